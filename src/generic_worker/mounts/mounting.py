"""Mounting and unmounting the three kinds, with the seed's `[mounts]` lines (seed-gw.md §4.3).

Each mount is an object created *before* its first await, so the feature can always unmount
what was started, even when the start was cancelled halfway (a task aborted during a long
download): a cache that was half set up is deleted rather than kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import slugid

from generic_worker import metrics
from generic_worker.mounts.caches import CacheEntry, DirectoryCaches
from generic_worker.mounts.compression import ARCHIVE_FORMATS, COMPRESSIONS, unsupported
from generic_worker.mounts.diskspace import Budget
from generic_worker.mounts.downloads import DownloadCache
from generic_worker.mounts.errors import MountError
from generic_worker.mounts.extract import extract_archive
from generic_worker.mounts.files import copy_file, decompress_file, move_directory
from generic_worker.mounts.logs import MountLog
from generic_worker.mounts.ownership import hand_over_file, hand_over_tree
from generic_worker.mounts.paths import mount_target
from generic_worker.mounts.placement import Placement
from generic_worker.mounts.sources import (
    ArtifactSource,
    FetchContext,
    IndexedRef,
    InlineSource,
    Source,
    URLSource,
)
from generic_worker.mounts.spec import MountSpec
from generic_worker.mounts.store import remove_path
from generic_worker.multiuser.identity import as_user
from generic_worker.multiuser.idmap import Owner, bind, unbind
from generic_worker.process import TaskUser


@dataclass
class MountContext:
    """What mounting needs from the task and the worker."""

    task_dir: Path
    log: MountLog
    caches: DirectoryCaches
    downloads: DownloadCache
    fetch: FetchContext
    required_bytes: int
    user: TaskUser | None = None
    """Multiuser: the task user, who gets everything mounted (None: the worker's own user)."""
    cache_owner: Owner | None = None
    """Multiuser with idmapped mounts: caches are stored as this owner and bind-mounted, mapped."""


async def make_directory(path: Path, log: MountLog, user: TaskUser | None = None) -> None:
    """Mkdir -p (as `user` when given) with the seed's line; `MountError` if something is in the way."""
    log.info(f"[mounts] Creating directory {path} with permissions 0700")
    try:
        await as_user(user, path.mkdir, 0o700, True, True)
    except OSError as e:
        raise MountError(f"cannot create directory {path}: {e}") from None


async def resolve(ctx: MountContext, source: Source) -> ArtifactSource | URLSource | InlineSource:
    """Indexed content becomes the artifact of the task the index names now (logged)."""
    if not isinstance(source, IndexedRef):
        return source
    resolved = await source.resolve(ctx.fetch)
    ctx.log.info(f"[mounts] Index namespace {source.namespace} resolves to task {resolved.task_id}")
    return resolved


@asynccontextmanager
async def content_file(ctx: MountContext, source: Source) -> AsyncIterator[tuple[Path, str]]:
    """The content as a local file and its description, for the duration of the block."""
    source = await resolve(ctx, source)
    if isinstance(source, InlineSource):
        path = ctx.downloads.directory / slugid.nice()
        budget = await asyncio.to_thread(Budget.measure, ctx.downloads.directory, ctx.required_bytes)
        budget.spend(len(source.data))
        ctx.log.info(f"[mounts] Writing {source.description} to {path}")
        try:
            await asyncio.to_thread(path.write_bytes, source.data)
            yield path, source.description
        finally:
            await asyncio.to_thread(remove_path, path)
        return
    async with ctx.downloads.lease(source, ctx.fetch, ctx.log, ctx.required_bytes) as path:
        yield path, source.description


class FileMount:
    """A file copied (or decompressed) from the content into the task directory."""

    def __init__(self, spec: MountSpec) -> None:
        self.spec = spec

    async def mount(self, ctx: MountContext) -> None:
        """Fetch, then copy or decompress into place; a failure leaves no partial file there."""
        spec = self.spec
        if spec.format is not None and spec.format not in COMPRESSIONS:
            raise MountError(unsupported(spec.format, "file"))
        target = await asyncio.to_thread(mount_target, ctx.task_dir, spec.path)
        if await asyncio.to_thread(target.is_dir):
            raise MountError(f"cannot mount file at path {target} since it already exists as a directory")
        try:
            await self._place(ctx, target)
        except BaseException:
            await asyncio.to_thread(_remove_file, target)  # what was written: space back for others
            raise

    async def _place(self, ctx: MountContext, target: Path) -> None:
        spec = self.spec
        assert spec.source is not None  # the schema requires content for file mounts
        source = await resolve(ctx, spec.source)
        if spec.format is None and isinstance(source, ArtifactSource | URLSource):
            placement = Placement(target, source.description, ctx.log, ctx.required_bytes)
            if ctx.user is not None:
                await make_directory(target.parent, ctx.log, ctx.user)
            await ctx.downloads.place(source, target, ctx.fetch, placement)
            await _hand_over_file(ctx, target)
            return
        async with content_file(ctx, source) as (path, what):
            await make_directory(target.parent, ctx.log, ctx.user)
            budget = await asyncio.to_thread(Budget.measure, target.parent, ctx.required_bytes)
            try:
                if spec.format is not None:
                    ctx.log.info(f"[mounts] Decompressing {spec.format} file {path} to {target}")
                    await asyncio.to_thread(decompress_file, path, spec.format, target, budget)
                else:
                    budget.spend((await asyncio.to_thread(os.stat, path)).st_size)
                    ctx.log.info(f"[mounts] Copying {path} to {target}")
                    await asyncio.to_thread(copy_file, path, target)
            except (MountError, OSError) as e:
                raise MountError(f"Not able to mount content from {what} at path {target}: {e}") from None
        await _hand_over_file(ctx, target)

    async def unmount(self, ctx: MountContext, purge: bool) -> None:
        """Nothing to do: the file goes with the task directory."""


class ReadOnlyDirectory:
    """An archive extracted into a directory for this task only."""

    def __init__(self, spec: MountSpec) -> None:
        self.spec = spec

    async def mount(self, ctx: MountContext) -> None:
        """Fetch, then extract into place."""
        spec = self.spec
        assert spec.source is not None and spec.format is not None  # required by the schema
        if spec.format not in ARCHIVE_FORMATS:
            raise MountError(unsupported(spec.format, "archive"))
        target = await asyncio.to_thread(mount_target, ctx.task_dir, spec.path)
        existed = await asyncio.to_thread(os.path.lexists, target)
        try:
            async with content_file(ctx, spec.source) as (path, _):
                await extract_into(ctx, path, spec.format, target)
        except BaseException:
            if not existed:  # what was extracted: space back for others
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(remove_path, target)
            raise

    async def unmount(self, ctx: MountContext, purge: bool) -> None:
        """Nothing to do: the directory goes with the task directory."""


async def _hand_over_file(ctx: MountContext, target: Path) -> None:
    if ctx.user is not None:
        ctx.log.info(f"[mounts] Granting {ctx.user.name} full control of '{target}'")
        await asyncio.to_thread(hand_over_file, target, ctx.user.uid, ctx.user.gid)


async def extract_into(ctx: MountContext, archive: Path, fmt: str, target: Path) -> None:
    """Create `target` and extract `archive` into it (as the task user), within the disk budget."""
    await make_directory(target, ctx.log, ctx.user)
    ctx.log.info(f"[mounts] Extracting {fmt} file {archive} to '{target}'")
    budget = await asyncio.to_thread(Budget.measure, target, ctx.required_bytes)
    # Opened with the worker's rights (downloads are root-only), extracted with the task user's.
    with await asyncio.to_thread(open, archive, "rb") as opened:
        result = await as_user(ctx.user, extract_archive, archive, fmt, target, budget, opened)
    for skipped in result.skipped:
        ctx.log.warn(f"[mounts] Skipped {skipped} while extracting {archive}")


class WritableCache:
    """A named cache moved into the task directory and back (or purged) at the end."""

    def __init__(self, spec: MountSpec) -> None:
        self.spec = spec
        self.name = spec.cache_name or ""
        self.entry: CacheEntry | None = None
        self.target: Path | None = None
        self.in_place = False
        self.complete = False
        self.bound = False

    async def mount(self, ctx: MountContext) -> None:
        """Move the cache in (or create it, optionally preloaded)."""
        spec = self.spec
        if spec.format is not None and spec.format not in ARCHIVE_FORMATS:
            raise MountError(unsupported(spec.format, "archive"))
        target = await asyncio.to_thread(mount_target, ctx.task_dir, spec.path)
        if target == Path(await asyncio.to_thread(os.path.realpath, ctx.task_dir)):
            raise MountError(
                f"cannot mount writable directory cache '{self.name}' at the task directory itself"
            )
        await asyncio.to_thread(_clear_target, target, self.name)
        self.target = target
        caches = ctx.caches
        entry = caches.acquire(self.name)
        if entry is not None and not await asyncio.to_thread(os.path.isdir, entry.location):
            ctx.log.warn(f"[mounts] Writable directory cache {self.name} vanished from {entry.location}")
            await caches.expunge(entry, ctx.log)
            entry = None
        if entry is not None:
            metrics.CACHE_HITS.labels("directory").inc()
            self.entry = entry
            await caches.lend(entry, ctx.task_dir)
        if entry is not None and ctx.cache_owner is not None:
            await self._bind(ctx, entry, existing=True)
        elif entry is not None:
            where = f"from {entry.location} to {target}"
            ctx.log.info(f"[mounts] Moving existing writable directory cache {self.name} {where}")
            await make_directory(target.parent, ctx.log, ctx.user)
            await asyncio.to_thread(move_directory, Path(entry.location), target)
            self.in_place = True
            if ctx.user is not None:
                ctx.log.info(f"[mounts] Granting {ctx.user.name} full control of '{target}'")
                await asyncio.to_thread(hand_over_tree, target, ctx.user.uid, ctx.user.gid)
        else:
            metrics.CACHE_MISSES.labels("directory").inc()
            self.entry = entry = caches.create(self.name)
            await caches.lend(entry, ctx.task_dir)
            ctx.log.info(
                f"[mounts] No existing writable directory cache '{self.name}' - creating {entry.location}"
            )
            self.in_place = True  # from here on, whatever is at the target belongs to this cache
            if ctx.cache_owner is not None:
                await self._bind(ctx, entry, existing=False)
            if spec.source is not None and spec.format is not None:
                async with content_file(ctx, spec.source) as (path, _):
                    await extract_into(ctx, path, spec.format, target)
            else:
                await make_directory(target, ctx.log, ctx.user)
        self.complete = True
        ctx.log.info(f"[mounts] Successfully mounted writable directory cache '{target}'")

    async def _bind(self, ctx: MountContext, entry: CacheEntry, *, existing: bool) -> None:
        """Bind-mount the cache at the target with its on-disk owner mapped to the task's user."""
        owner, target = ctx.cache_owner, self.target
        assert owner is not None and target is not None
        uid, gid = (ctx.user.uid, ctx.user.gid) if ctx.user is not None else (0, 0)
        who = ctx.user.name if ctx.user is not None else "the worker's user"
        source = Path(entry.location)
        if not existing:
            await asyncio.to_thread(_new_cache_dir, source, owner)
        elif (await asyncio.to_thread(os.stat, source)).st_uid != owner.uid:
            # Made before idmapped mounts were used (e.g. by the chown fallback): fixed once.
            ctx.log.info(f"[mounts] Giving cache {self.name} at {source} to the caches' owner (once)")
            await asyncio.to_thread(hand_over_tree, source, owner.uid, owner.gid)
        await make_directory(target, ctx.log, ctx.user)
        what = "existing writable directory cache" if existing else "writable directory cache"
        ctx.log.info(f"[mounts] Mounting {what} {self.name} from {source} at {target}, owned by {who}")
        await asyncio.to_thread(bind, source, target, owner, uid, gid)
        self.bound = True

    async def unmount(self, ctx: MountContext, purge: bool) -> None:
        """Move the cache back, or purge it (asked to, aborted task, half mounted, vanished)."""
        entry, target = self.entry, self.target
        if entry is None or target is None:
            return
        if self.bound:
            # Mounted, not moved: detach it, and the cache is back where it always was.
            await asyncio.to_thread(unbind, target)
            self.bound = False
            if purge or entry.purge_pending or not self.complete:
                await ctx.caches.expunge(entry, ctx.log)
                return
            ctx.log.info(f'[mounts] Preserving cache: unmounted "{target}", kept at "{entry.location}"')
            await ctx.caches.give_back(entry, ctx.log)
            return
        also = (target,) if self.in_place else ()
        if purge or entry.purge_pending or not self.complete:
            await ctx.caches.expunge(entry, ctx.log, *also)
            return
        problem = await asyncio.to_thread(_not_a_directory, target)
        if problem is None:
            ctx.log.info(f'[mounts] Preserving cache: Moving "{target}" to "{entry.location}"')
            try:
                await asyncio.to_thread(move_directory, target, Path(entry.location))
            except OSError as e:
                problem = str(e)
        if problem is not None:
            await ctx.caches.expunge(entry, ctx.log, *also)
            raise MountError(f'could not persist cache "{self.name}" due to {problem}')
        await ctx.caches.give_back(entry, ctx.log)


def _remove_file(target: Path) -> None:
    """Delete a file (or link) at `target`; leave a directory or nothing alone."""
    try:
        if not stat.S_ISDIR(os.lstat(target).st_mode):
            target.unlink()
    except OSError:
        pass  # gone already, or not ours to delete: the failure being reported matters more


def _new_cache_dir(path: Path, owner: Owner) -> None:
    """A new, empty cache directory stored as the caches' owner (seen as the task's user)."""
    path.mkdir(mode=0o700, parents=True)
    os.chown(path, owner.uid, owner.gid)


def _clear_target(target: Path, name: str) -> None:
    """Make room for a cache at `target`: nothing there, or an empty directory (removed)."""
    try:
        target.rmdir()
    except FileNotFoundError:
        return
    except OSError:
        raise MountError(
            f"cannot mount writable directory cache '{name}' at {target} since it already exists "
            "and is not an empty directory"
        ) from None


def _not_a_directory(target: Path) -> str | None:
    """Why `target` cannot be kept as a cache (the task moved or replaced it), or None."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return f"{target} no longer exists (the task moved or deleted it)"
    if not os.path.isdir(target) or os.path.islink(target):
        return f"{target} is no longer a directory (the task replaced it, st_mode {oct(st.st_mode)})"
    return None


Mounted = FileMount | ReadOnlyDirectory | WritableCache


def new_mount(spec: MountSpec) -> Mounted:
    """The mount object for a spec (nothing happens until `mount`)."""
    if spec.kind == "writableDirectoryCache":
        return WritableCache(spec)
    if spec.kind == "readOnlyDirectory":
        return ReadOnlyDirectory(spec)
    return FileMount(spec)
