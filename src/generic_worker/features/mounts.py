"""Mounts and caches (`payload.mounts`): writable caches, read-only directories and file mounts.

Worker side: loads the cache and download indexes at start (dropping what a crash may have left
half-written), keeps `requiredDiskSpaceMegabytes` free before every claim by evicting least
recently used caches and downloads, and refuses to claim (or stops the worker, as upstream) when
it cannot. Task side: applies purge-cache requests, mounts in payload order (the first failure
fails the task), and at the end moves caches back, or purges them when the task was aborted or
its last exit code is in `onExitStatus.purgeCaches`. See `generic_worker.mounts` for the parts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from generic_worker.engine.feature import (
    FeatureBase,
    FeatureInitError,
    ScopeRequirement,
    TaskFeature,
    TaskFeatureBase,
    WorkerExit,
)
from generic_worker.engine.taskrun import TaskRun
from generic_worker.errors import ExecutionErrors, TaskError
from generic_worker.exitcodes import ExitCode
from generic_worker.mounts import (
    DirectoryCaches,
    DownloadCache,
    FetchContext,
    MalformedMounts,
    MountContext,
    Mounted,
    MountError,
    MountSpec,
    PurgeRequests,
    WorkerLog,
    cache_names,
    make_room,
    new_mount,
    parse_mounts,
)
from generic_worker.mounts.diskspace import MIB
from generic_worker.mounts.download import new_session
from generic_worker.multiuser.idmap import Owner, probe
from generic_worker.payload.model import as_payload, purge_caches_exit_codes
from generic_worker.tc import Credentials

if TYPE_CHECKING:
    from generic_worker.engine.worker import WorkerContext

log = logging.getLogger(__name__)

PURGE_RETRIES = 2
"""Retries of the purgeRequests call (the client's default of 10 backs off for minutes)."""

ABORTED_PURGE = (
    "[mounts] Purging caches since the task was aborted and may have left them in an inconsistent state"
)


class MountsFeature(FeatureBase):
    """Owns the caches, the downloads, the purge-cache state and the disk-space GC."""

    name = "Mounts/Caches"

    def __init__(self) -> None:
        self.caches: DirectoryCaches | None = None
        self.downloads: DownloadCache | None = None
        self.purges: PurgeRequests | None = None
        self.tasks_dir = Path(".")
        self.required_megabytes = 0
        self.cache_owner: Owner | None = None
        self.running = 0
        self._session: aiohttp.ClientSession | None = None
        self._worker_log = WorkerLog(log)

    async def initialise(self, worker: WorkerContext) -> None:
        """Load both indexes (consistent even after a SIGKILL) and create the directories."""
        config = worker.config
        # Relative directories are relative to the worker's working directory, as tasksDir is.
        self.tasks_dir = Path.cwd() / config.tasks_dir
        self.required_megabytes = config.required_disk_space_megabytes
        self.caches = DirectoryCaches(Path.cwd() / config.caches_dir, worker.state_dir, config.capacity)
        self.downloads = DownloadCache(Path.cwd() / config.downloads_dir, worker.state_dir)
        try:
            await self.caches.load()
            await self.downloads.load()
        except OSError as e:
            raise FeatureInitError(
                f"cannot use cachesDir/downloadsDir or their state files: {e}", ExitCode.INTERNAL_ERROR
            ) from e
        if config.multiuser:
            # Idmapped bind mounts hand a cache to a task user in O(1); without them, chown.
            self.cache_owner = await probe(self.caches.directory)
        services = worker.services
        # Few retries: a purge-cache outage only warns, and must not hold tasks up for minutes.
        self.purges = PurgeRequests(
            lambda: services.client("purge-cache", max_retries=PURGE_RETRIES), config.task_queue_id
        )

    def is_enabled(self, task: TaskRun) -> bool:
        """`enableMounts`."""
        return task.config.enable_mounts

    def is_requested(self, task: TaskRun) -> bool:
        """When the payload has mounts."""
        return bool(task.payload.get("mounts"))

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """The task's mounts, checked (dependencies, base64) before anything else happens."""
        try:
            specs = parse_mounts(
                as_payload(task.payload).get("mounts", []), task.definition.get("dependencies", [])
            )
        except MalformedMounts as e:
            raise TaskError.malformed_payload(str(e)) from None
        return _TaskMounts(self, task, specs)

    def session(self) -> aiohttp.ClientSession:
        """The download session (its own: downloads must not share the API calls' timeouts)."""
        if self._session is None or self._session.closed:
            self._session = new_session()
        return self._session

    def stores(self) -> tuple[DirectoryCaches, DownloadCache, PurgeRequests]:
        """The stores (initialised before any task)."""
        assert self.caches is not None and self.downloads is not None and self.purges is not None
        return self.caches, self.downloads, self.purges

    async def before_claim(self) -> bool:
        """Keep `requiredDiskSpaceMegabytes` free; do not claim (or stop the worker) when impossible."""
        caches, downloads, _ = self.stores()
        wlog = self._worker_log
        outcome = await make_room(
            self.tasks_dir,
            self.required_megabytes,
            lambda: [*caches.evictable(wlog), *downloads.evictable(wlog)],
            lambda: caches.in_use() + downloads.in_use(),
            wlog,
        )
        if outcome.enough:
            return True
        message = outcome.shortfall_message()
        if outcome.in_use == 0 and self.running == 0:
            raise WorkerExit(message, ExitCode.INTERNAL_ERROR)
        log.warning("%s; not claiming until running tasks release them (free at %s)", message, self.tasks_dir)
        return False

    async def close(self) -> None:
        """Let background copies of downloads finish, then close the download session."""
        if self.downloads is not None:
            await self.downloads.close()
        if self._session is not None:
            await self._session.close()


class _TaskMounts(TaskFeatureBase):
    def __init__(self, feature: MountsFeature, task: TaskRun, specs: list[MountSpec]) -> None:
        self.feature = feature
        self.task = task
        self.specs = specs
        self.mounted: list[Mounted] = []
        self.started = False

    def required_scopes(self) -> ScopeRequirement:
        names = cache_names(self.specs)
        return [[f"generic-worker:cache:{name}" for name in names]] if names else ()

    def context(self) -> MountContext:
        task = self.task
        caches, downloads, _ = self.feature.stores()

        def client(service: str, credentials: Credentials | None) -> Any:
            return task.services.client(service, task.credentials if credentials is None else credentials)

        fetch = FetchContext(self.feature.session(), task.queue, client)
        return MountContext(
            task.task_dir,
            task.log,
            caches,
            downloads,
            fetch,
            self.feature.required_megabytes * MIB,
            user=task.command_user,
            cache_owner=self.feature.cache_owner,
        )

    async def start(self) -> None:
        self.feature.running += 1
        self.started = True
        caches, _, purges = self.feature.stores()
        has_caches = bool(cache_names(self.specs))
        if purges.due(has_caches):
            for name, before in await purges.fetch(self.task.log):
                await caches.purge(name, before, self.task.log)
        ctx = self.context()
        for spec in self.specs:
            mount = new_mount(spec)
            self.mounted.append(mount)  # before any await: stop() unmounts even a half-done mount
            try:
                await mount.mount(ctx)
            except (MountError, OSError) as e:
                raise TaskError.failure(f"[mounts] {e}") from None

    async def stop(self, errors: ExecutionErrors) -> None:
        if not self.started:
            return
        self.feature.running -= 1
        purge = self._purge_reason()
        if purge and any(m.spec.cache_name for m in self.mounted):
            self.task.log.info(purge)
        ctx = self.context()
        for mount in reversed(self.mounted):
            try:
                await mount.unmount(ctx, bool(purge))
            except (MountError, OSError) as e:
                errors.add(
                    TaskError.failure(f"[mounts] Could not unmount {mount.spec.description} due to: '{e}'")
                )

    def _purge_reason(self) -> str:
        task = self.task
        if task.aborted:
            return ABORTED_PURGE
        code = task.last_exit_code
        if code is not None and code in purge_caches_exit_codes(as_payload(task.payload)):
            return (
                f"[mounts] Purging caches since the last command exited {code}, "
                "listed in onExitStatus.purgeCaches"
            )
        return ""
