"""Crash-safe JSON state files (`file-caches.json`, `directory-caches.json`).

A state file is replaced in one `rename(2)`: the new content goes to a temporary file in the
same directory, is flushed with `fsync`, then renamed over the old one, and the directory is
synced. A SIGKILL (or a power cut) at any point therefore leaves either the old or the new
file, never a torn one. Blocking: call through `asyncio.to_thread`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def write_json_atomically(path: Path, data: Any) -> None:
    """Replace `path` with `data` as JSON, atomically (see the module docstring)."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in `path`; `{}` if it is missing, unreadable or not an object.

    A damaged state file must not stop the worker (the seed panicked): it can only have been
    damaged from outside, so starting with no caches is the safe answer. The problem is logged.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.warning("ignoring unreadable state file %s: %s", path, e)
        return {}
    if not isinstance(data, dict):
        log.warning("ignoring state file %s: not a JSON object", path)
        return {}
    return data
