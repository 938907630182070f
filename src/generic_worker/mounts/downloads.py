"""The download cache: mount content fetched once into `downloadsDir`, shared across tasks and restarts.

Keys are the seed's (`artifact:<taskId>:<name>`, `urlcontent:<url>`); the index is
`file-caches.json` in the worker's state directory, replaced atomically after every change. A
download is registered only once it is complete, so a worker killed mid-download leaves at most an
orphan file, which the next start deletes. On load, entries whose file is missing or has the
wrong size are dropped (the seed panicked on them). Entries handed to a task are counted as in
use and never evicted meanwhile. The `[mounts]` lines are the seed's (seed-gw.md §4.4).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import slugid

from generic_worker import metrics
from generic_worker.mounts.diskspace import Budget
from generic_worker.mounts.download import download
from generic_worker.mounts.errors import MountError
from generic_worker.mounts.eviction import Evictable
from generic_worker.mounts.files import copy_and_hash, hash_file
from generic_worker.mounts.logs import MountLog, WorkerLog
from generic_worker.mounts.placement import Placement
from generic_worker.mounts.sources import DownloadSource, FetchContext
from generic_worker.mounts.statefile import read_json_object
from generic_worker.mounts.store import StateWriter, delete_orphans, remove_path
from generic_worker.timefmt import now, to_tc

log = logging.getLogger(__name__)

STATE_FILE = "file-caches.json"


@dataclass
class FileEntry:
    """One cached download (persisted fields first; `in_use` is not persisted)."""

    key: str
    location: str
    sha256: str
    size: int
    created: str
    lastUsed: float  # noqa: N815 - the persisted JSON name
    hits: int = 1
    in_use: int = field(default=0, compare=False)

    def persisted(self) -> dict[str, Any]:
        """The JSON form."""
        data = asdict(self)
        del data["in_use"]
        return data


class DownloadCache:
    """Downloads by key, their persisted index, and their leases to running tasks."""

    def __init__(self, directory: Path, state_dir: Path) -> None:
        self.directory = directory
        self.entries: dict[str, FileEntry] = {}
        self._state = StateWriter(state_dir / STATE_FILE, self._snapshot)
        self._locks: dict[str, asyncio.Lock] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._worker_log = WorkerLog(log)

    def _snapshot(self) -> dict[str, Any]:
        return {key: entry.persisted() for key, entry in self.entries.items()}

    async def load(self) -> None:
        """Read the index, drop entries without their file, delete orphan downloads."""
        self.entries = await asyncio.to_thread(self._load)
        await self._state.save(strict=True)

    def _load(self) -> dict[str, FileEntry]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        entries: dict[str, FileEntry] = {}
        for key, raw in read_json_object(self._state.path).items():
            try:
                entry = FileEntry(
                    **{k: raw[k] for k in ("key", "location", "sha256", "size", "created")},
                    lastUsed=float(raw.get("lastUsed", 0)),
                    hits=int(raw.get("hits", 1)),
                )
                size = os.stat(entry.location).st_size
            except (KeyError, TypeError, ValueError, OSError) as e:
                log.warning("dropping download cache entry %s: %s", key, e)
                continue
            if size != entry.size:
                log.warning("dropping download cache entry %s: size %d, expected %d", key, size, entry.size)
                continue
            entries[key] = entry
        delete_orphans(self.directory, [e.location for e in entries.values()], "download")
        return entries

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    @asynccontextmanager
    async def lease(
        self, source: DownloadSource, ctx: FetchContext, tlog: MountLog, required_bytes: int
    ) -> AsyncIterator[Path]:
        """The verified, cached file for `source`, kept from eviction until the block ends."""
        async with self._lock(source.key):
            entry = await self._cached(source, tlog)
            if entry is None:
                entry = await self._download(source, ctx, tlog, required_bytes)
        try:
            yield Path(entry.location)
        finally:
            await self._release(entry)

    async def _release(self, entry: FileEntry) -> None:
        entry.in_use -= 1
        entry.lastUsed = time.time()
        await self._state.save()

    async def place(
        self, source: DownloadSource, target: Path, ctx: FetchContext, placement: Placement
    ) -> None:
        """Make `target` the task's own copy of the verified content (a file mount).

        A cached download is hashed and copied at the same time (both read the same immutable
        file; a hash mismatch deletes the copy). A fresh download is hard-linked into place, and
        the cache gets its own copy in the background (see `_detach`), so a first mount writes
        the content once, not twice.
        """
        lock = self._lock(source.key)
        await lock.acquire()
        detaching = False
        entry = self.entries.get(source.key)
        try:
            if entry is not None:
                entry.in_use += 1  # before any await: the GC must not take it now
                entry.hits += 1
                sha, copied = await placement.copy_while_hashing(Path(entry.location), entry.size)
                if self._judge(entry, source, sha, placement.log):
                    metrics.CACHE_HITS.labels("file").inc()
                    placement.announce(Path(entry.location))
                    copied.check()
                    return
                await self._discard(entry, placement.log)
                await asyncio.to_thread(target.unlink, missing_ok=True)
            entry = None
            entry = await self._download(source, ctx, placement.log, placement.required_bytes)
            placement.announce(Path(entry.location))
            if await placement.link(Path(entry.location), entry.size):
                detaching = True
                task = asyncio.create_task(self._detach(entry, lock), name=f"detach {entry.key}")
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        finally:
            if not detaching:
                lock.release()
                if entry is not None:
                    await self._release(entry)

    async def _detach(self, entry: FileEntry, lock: asyncio.Lock) -> None:
        """Give the cache its own copy of a download that is also linked into a task.

        The copy is hashed as it is written; if the task changed the shared file meanwhile the
        hashes differ and the entry is dropped instead of keeping altered content. Holds the key's
        lock throughout, so no other task can use the entry before it is independent.
        """
        fresh = self.directory / slugid.nice()
        try:
            sha = await asyncio.to_thread(copy_and_hash, Path(entry.location), fresh)
            if sha == entry.sha256:
                await asyncio.to_thread(os.replace, fresh, entry.location)
            else:
                log.warning("download %s changed while it was being copied; dropping it", entry.key)
                await self._discard(entry, self._worker_log)
        except OSError as e:
            log.warning("could not copy download %s: %s; dropping it", entry.key, e)
            await self._discard(entry, self._worker_log)
        finally:
            await asyncio.to_thread(remove_path, fresh)
            lock.release()
            await self._release(entry)

    async def close(self) -> None:
        """Wait for background copies (at worker exit)."""
        while self._background:
            await asyncio.wait(set(self._background))

    async def _cached(self, source: DownloadSource, tlog: MountLog) -> FileEntry | None:
        entry = self.entries.get(source.key)
        if entry is None:
            return None
        entry.in_use += 1  # before any await: the GC must not take it now
        entry.hits += 1
        try:
            sha: str | None = await asyncio.to_thread(hash_file, Path(entry.location))
        except OSError as e:
            tlog.warn(f"[mounts] Cached download {entry.location} of {source.key} is unreadable ({e})")
            sha = None
        except BaseException:  # cancelled (the task was aborted): give the entry back
            entry.in_use -= 1
            raise
        if self._judge(entry, source, sha, tlog):
            metrics.CACHE_HITS.labels("file").inc()
            return entry
        await self._discard(entry, tlog)
        return None

    def _judge(self, entry: FileEntry, source: DownloadSource, sha: str | None, tlog: MountLog) -> bool:
        """Whether a cached download may be used (the seed's lines); False means re-download."""
        if sha != entry.sha256:
            if sha is not None:
                tlog.warn(
                    f"[mounts] Cached download {entry.location} of {source.key} has SHA256 {sha}, not "
                    f"{entry.sha256} as when it was downloaded, so deleting it"
                )
            return False
        if source.sha256 is None:
            tlog.warn(
                f"[mounts] No SHA256 specified in task mounts for {source.key} - SHA256 from downloaded "
                f"file {entry.location} is {sha}."
            )
            return True
        if sha == source.sha256:
            where = f"{source.key} ({entry.location})"
            tlog.info(f"[mounts] Found existing download for {where} with correct SHA256 {sha}")
            return True
        tlog.info(
            f"Found existing download of {source.key} ({entry.location}) with SHA256 {sha} but task "
            f"definition explicitly requires {source.sha256} so deleting it"
        )
        return False

    async def _discard(self, entry: FileEntry, tlog: MountLog) -> None:
        entry.in_use -= 1
        await self.expunge(entry, tlog)

    async def _download(
        self, source: DownloadSource, ctx: FetchContext, tlog: MountLog, required_bytes: int
    ) -> FileEntry:
        metrics.CACHE_MISSES.labels("file").inc()
        path = self.directory / slugid.nice()
        what = source.description

        async def url() -> str:
            tlog.info(f"[mounts] Downloading {what} to {path}")
            return await source.url(ctx)

        def retrying(error: str) -> None:
            tlog.warn(f"[mounts] Download of {what} failed on this attempt: {error}")

        budget = await asyncio.to_thread(Budget.measure, self.directory, required_bytes)
        try:
            result = await download(ctx.session, url, path, budget, retrying)
        except BaseException as e:
            await asyncio.to_thread(remove_path, path)
            if isinstance(e, MountError):
                raise MountError(f"Could not fetch from {what} into file {path}: {e}") from None
            raise
        tlog.info(
            f"[mounts] Downloaded {result.size} bytes with SHA256 {result.sha256} from {what} to {path}"
        )
        entry = FileEntry(
            source.key, str(path), result.sha256, result.size, to_tc(now()), time.time(), in_use=1
        )
        self.entries[source.key] = entry
        if source.transport_sha256 and source.transport_sha256 != result.sha256:
            await self.expunge(entry, tlog)
            raise MountError(
                f"Download {path} of {what} has SHA256 {result.sha256} but the object service recorded "
                f"{source.transport_sha256}: the download is corrupt"
            )
        if source.sha256 is None:
            tlog.warn(
                f"[mounts] Download {path} of {what} has SHA256 {result.sha256} but task payload does not "
                "declare a required value, so content authenticity cannot be verified"
            )
        elif source.sha256 != result.sha256:
            await self.expunge(entry, tlog)
            raise MountError(
                f"Download {path} of {what} has SHA256 {result.sha256} but task definition explicitly "
                f"requires {source.sha256}; not retrying download as there were no connection failures "
                "and HTTP response status code was 200"
            )
        else:
            tlog.info(f"[mounts] Content from {what} ({path}) matches required SHA256 {result.sha256}")
        await self._state.save()
        return entry

    async def expunge(self, entry: FileEntry, tlog: MountLog) -> None:
        """Forget a download and delete its file (the seed's two lines)."""
        tlog.info(f"[mounts] Removing cache {entry.key} from cache table")
        if self.entries.get(entry.key) is entry:
            del self.entries[entry.key]
        await self._state.save()
        tlog.info(f"[mounts] Deleting cache {entry.key} file(s) at {entry.location}")
        await asyncio.to_thread(remove_path, Path(entry.location))

    def evictable(self, tlog: MountLog) -> Iterator[Evictable]:
        """Downloads no task is using, for the GC."""
        for entry in list(self.entries.values()):
            if entry.in_use == 0:
                yield Evictable(
                    entry.lastUsed, f"download {entry.key}", functools.partial(self._evict, entry, tlog)
                )

    async def _evict(self, entry: FileEntry, tlog: MountLog) -> None:
        if entry.in_use == 0 and self.entries.get(entry.key) is entry:
            metrics.CACHE_EVICTIONS.labels("file").inc()
            await self.expunge(entry, tlog)

    def in_use(self) -> int:
        """How many downloads running tasks hold."""
        return sum(1 for e in self.entries.values() if e.in_use)
