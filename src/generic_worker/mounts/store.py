"""Pieces both caches share: serialised state saves, generated entry names, and deleting entries.

Entries (cache directories, downloads) are named with fresh slugids, so at start-up anything in
`cachesDir` / `downloadsDir` that looks like one but is not in the index is ours and orphaned (a
worker killed mid-download, or between deleting an entry and its files) and can be deleted;
anything else there is left alone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from generic_worker.engine.preallocate import NO_SPACE
from generic_worker.mounts.statefile import write_json_atomically

log = logging.getLogger(__name__)

_GENERATED = re.compile(r"^[A-Za-z0-9_-]{22}$")


def is_generated_name(name: str) -> bool:
    """True for names this package gives entries (slugids)."""
    return bool(_GENERATED.match(name))


def delete_orphans(directory: Path, known_locations: Iterable[str], what: str) -> None:
    """Delete generated-looking entries of `directory` that no index entry points at (blocking)."""
    known = {Path(location).name for location in known_locations}
    for path in directory.iterdir():
        if is_generated_name(path.name) and path.name not in known:
            log.info("deleting orphan %s %s", what, path)
            remove_path(path)


def remove_path(path: Path) -> None:
    """Delete a file, link or directory tree; gone already is fine (blocking).

    Directories a task made read-only are made writable first, so a cache a task locked down can
    still be evicted (the task ran as this user, or the worker is root).
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        path.unlink(missing_ok=True)
        return

    def retry_writable(function: Callable[..., Any], failed: str, _exc: object) -> None:
        if function is os.rmdir or function is os.unlink:  # its directory is not writable
            parent = os.path.dirname(failed)
            os.chmod(parent, os.stat(parent).st_mode | stat.S_IRWXU)
            function(failed)
        else:  # the directory itself could not be opened or listed
            os.chmod(failed, os.stat(failed).st_mode | stat.S_IRWXU)
            shutil.rmtree(failed, onerror=_give_up)

    shutil.rmtree(path, onerror=retry_writable)


def _give_up(_function: Callable[..., Any], failed: str, exc_info: Any) -> None:
    error = exc_info[1] if isinstance(exc_info, tuple) else exc_info
    raise error if isinstance(error, BaseException) else OSError(f"cannot delete {failed}")


class StateWriter:
    """Saves one state file from a snapshot function; saves never interleave, the last one wins.

    A save that fails (a full disk) is logged and otherwise ignored: the file keeps the previous
    state (write-then-rename), the index in memory stays right, and the next save writes it all.
    The previous state is always safe to start from: downloads or caches it does not list are
    deleted as orphans at start, and entries whose files are gone are dropped.
    """

    def __init__(self, path: Path, snapshot: Callable[[], Any]) -> None:
        self.path = path
        self._snapshot = snapshot
        self._lock = asyncio.Lock()
        self.failing: str | None = None
        """Why the last save failed (None: the file is up to date)."""

    async def save(self, *, strict: bool = False) -> None:
        """Write the current snapshot atomically (taken under the lock, so in call order).

        Never raises for a write that fails, unless `strict` (at start: an unusable state
        directory is a configuration error) and the failure is not a full disk.
        """
        async with self._lock:
            try:
                await asyncio.to_thread(write_json_atomically, self.path, self._snapshot())
            except OSError as e:
                if strict and e.errno not in NO_SPACE:
                    raise
                if self.failing is None:
                    log.warning("could not save %s (%s); it keeps the previous state for now", self.path, e)
                self.failing = str(e)
                return
            if self.failing is not None:
                log.info("saved %s again: it is up to date", self.path)
                self.failing = None
