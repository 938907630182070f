"""Writable directory caches: named directories kept in `cachesDir` and lent to one task at a time.

Each cache name has a pool of entries (usually one; more only when tasks running at the same time
want the same name, as upstream's pools with `capacity` > 1). Lending and returning a cache is a
`rename(2)` each way, so it costs the same for ten files or a million.

Crash safety (TARGET §11/§12 quirk 12; peers.md §0.5): an entry is marked `mountedIn` (and the
index saved) *before* its directory moves into a task, and unmarked only after it is back. A
worker killed in between leaves the mark, and the next start deletes that entry rather than
trusting a cache a task may have been writing to. The index is `directory-caches.json`, replaced
atomically after every change.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import slugid

from generic_worker import metrics
from generic_worker.mounts.eviction import Evictable
from generic_worker.mounts.logs import MountLog
from generic_worker.mounts.statefile import read_json_object
from generic_worker.mounts.store import StateWriter, delete_orphans, remove_path
from generic_worker.timefmt import now, parse_tc, to_tc

log = logging.getLogger(__name__)

STATE_FILE = "directory-caches.json"

PURGE_SLACK = timedelta(minutes=5)
"""Caches created up to this long after a purge request's `before` are purged too (clock skew)."""


@dataclass
class CacheEntry:
    """One cache directory (persisted fields first; `purge_pending` is not persisted)."""

    key: str
    location: str
    created: str
    lastUsed: float  # noqa: N815 - the persisted JSON name
    hits: int = 0
    mountedIn: str | None = None  # noqa: N815 - the persisted JSON name
    purge_pending: bool = field(default=False, compare=False)

    def persisted(self) -> dict[str, Any]:
        """The JSON form."""
        data = asdict(self)
        del data["purge_pending"]
        return data


class DirectoryCaches:
    """The cache entries, their persisted index, and lending them to tasks."""

    def __init__(self, directory: Path, state_dir: Path, pool_size: int = 1) -> None:
        self.directory = directory
        self.pool_size = max(1, pool_size)
        self.entries: dict[str, CacheEntry] = {}
        """By location name (the entry's slugid)."""
        self._state = StateWriter(state_dir / STATE_FILE, self._snapshot)

    def _snapshot(self) -> dict[str, Any]:
        return {name: entry.persisted() for name, entry in self.entries.items()}

    async def load(self) -> None:
        """Read the index; drop entries without a directory or left mounted; delete orphans."""
        self.entries = await asyncio.to_thread(self._load)
        await self._state.save(strict=True)

    def _load(self) -> dict[str, CacheEntry]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        entries: dict[str, CacheEntry] = {}
        for name, raw in read_json_object(self._state.path).items():
            try:
                entry = CacheEntry(
                    str(raw["key"]),
                    str(raw["location"]),
                    str(raw["created"]),
                    float(raw.get("lastUsed", 0)),
                    int(raw.get("hits", 0)),
                    raw.get("mountedIn"),
                )
                parse_tc(entry.created)
            except (KeyError, TypeError, ValueError) as e:
                log.warning("dropping directory cache entry %s: %s", name, e)
                continue
            if entry.mountedIn is not None:
                log.warning(
                    "dropping directory cache %r (%s): it was mounted in %s when the worker stopped, "
                    "so it may be half-written",
                    entry.key,
                    entry.location,
                    entry.mountedIn,
                )
                remove_path(Path(entry.location))
                continue
            if not Path(entry.location).is_dir():
                log.warning("dropping directory cache %r: %s is missing", entry.key, entry.location)
                continue
            entries[name] = entry
        delete_orphans(self.directory, [e.location for e in entries.values()], "cache directory")
        return entries

    def acquire(self, name: str) -> CacheEntry | None:
        """The most recently used free entry for cache `name`, or None (caller marks it mounted)."""
        free = [e for e in self.entries.values() if e.key == name and e.mountedIn is None]
        return max(free, key=lambda e: e.lastUsed, default=None)

    def create(self, name: str) -> CacheEntry:
        """A new entry for cache `name` (registered; its directory does not exist yet)."""
        slug = slugid.nice()
        entry = CacheEntry(name, str(self.directory / slug), to_tc(now()), time.time())
        self.entries[slug] = entry
        return entry

    async def lend(self, entry: CacheEntry, task_dir: Path) -> None:
        """Mark `entry` as in `task_dir` and save, before its directory moves there."""
        entry.mountedIn = str(task_dir)
        entry.hits += 1
        entry.lastUsed = time.time()
        await self._state.save()

    async def give_back(self, entry: CacheEntry, tlog: MountLog) -> None:
        """Unmark `entry` once its directory is back in `cachesDir`; trim an oversized pool."""
        entry.mountedIn = None
        entry.lastUsed = time.time()
        await self._state.save()
        spare = sorted(
            (e for e in self.entries.values() if e.key == entry.key and e.mountedIn is None),
            key=lambda e: e.lastUsed,
        )
        for extra in spare[: max(0, len(spare) - self.pool_size)]:
            await self.expunge(extra, tlog)

    async def expunge(self, entry: CacheEntry, tlog: MountLog, *also: Path) -> None:
        """Forget a cache and delete its files (the seed's two lines), plus `also` (its mount)."""
        tlog.info(f"[mounts] Removing cache {entry.key} from cache table")
        self.entries.pop(Path(entry.location).name, None)
        await self._state.save()
        tlog.info(f"[mounts] Deleting cache {entry.key} file(s) at {entry.location}")
        for path in (Path(entry.location), *also):
            try:
                await asyncio.to_thread(remove_path, path)
            except OSError as e:
                tlog.warn(f"[mounts] Could not delete {path}: {e}")

    async def purge(self, name: str, before: datetime, tlog: MountLog) -> None:
        """Apply a purge request: caches `name` created before `before` (+ slack) go."""
        for entry in list(self.entries.values()):
            if entry.key != name or parse_tc(entry.created) >= before + PURGE_SLACK:
                continue
            if entry.mountedIn is not None:
                entry.purge_pending = True  # in use by a running task: purged when it returns
            else:
                await self.expunge(entry, tlog)

    def evictable(self, tlog: MountLog) -> Iterator[Evictable]:
        """Caches no task is using, for the GC."""
        for entry in list(self.entries.values()):
            if entry.mountedIn is None:
                what = f"writable directory cache {entry.key} ({entry.location})"
                yield Evictable(entry.lastUsed, what, functools.partial(self._evict, entry, tlog))

    async def _evict(self, entry: CacheEntry, tlog: MountLog) -> None:
        if entry.mountedIn is None and Path(entry.location).name in self.entries:
            metrics.CACHE_EVICTIONS.labels("directory").inc()
            await self.expunge(entry, tlog)

    def in_use(self) -> int:
        """How many caches running tasks hold."""
        return sum(1 for e in self.entries.values() if e.mountedIn is not None)
