"""The image cache: artifact images already loaded into docker, keyed by the artifact's SHA-256.

Kept in `d2g-image-cache.json` in the worker's state directory, so it survives restarts: a
second task with the same image artifact (same content, whatever its task or name) skips
`docker load`. An entry is trusted only while docker still has the image (checked by id at use);
the disk-space GC removes cached images to make room. Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

CACHE_FILE = "d2g-image-cache.json"

images_in_use: Counter[str] = Counter()
"""Image ids that running d2g tasks use (worker-wide, on the event loop): the GC leaves them."""


@dataclass(frozen=True)
class CachedImage:
    """One loaded image: docker's id (`sha256:...`) and the name `docker load` reported."""

    id: str
    name: str


class ImageCache:
    """The on-disk map from artifact SHA-256 to `CachedImage` (callers serialise access)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / CACHE_FILE

    def read(self) -> dict[str, CachedImage]:
        """Every entry; an unreadable or malformed file counts as empty (images are reloaded)."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(raw, dict):
            return {}
        entries = {}
        for key, value in raw.items():
            if isinstance(value, dict) and isinstance(value.get("id"), str):
                entries[key] = CachedImage(value["id"], str(value.get("name", "")))
        return entries

    def write(self, entries: dict[str, CachedImage]) -> None:
        """Replace the file with `entries` (atomically; readable by the worker's user only)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({k: asdict(v) for k, v in sorted(entries.items())}, indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)

    def get(self, key: str) -> CachedImage | None:
        """The entry for an artifact hash, if any."""
        return self.read().get(key)

    def put(self, key: str, image: CachedImage) -> None:
        """Add or replace one entry."""
        entries = self.read()
        entries[key] = image
        self.write(entries)

    def drop(self, keys: set[str]) -> None:
        """Forget entries (their images were removed)."""
        entries = self.read()
        self.write({k: v for k, v in entries.items() if k not in keys})
