"""Spot termination (with `--configure-for-aws` only): abort running tasks when AWS reclaims the instance.

While at least one task runs, one shared poller asks the metadata service for
`latest/meta-data/spot/termination-time` every 5 s (the first time at once). 200 means the
instance is about to be taken away: every running task is aborted as `exception/worker-shutdown`
(its log is uploaded as usual), and the engine stops the worker with exit 72 after a run
resolved that way; the machine is not shut down (AWS does that). 404 is the normal answer;
any other status warns; a failed request is logged and the poll goes on. As in the seed, there
is no polling between tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp

from generic_worker.aws import MetadataService
from generic_worker.engine.feature import FeatureBase, TaskFeature, TaskFeatureBase
from generic_worker.engine.taskrun import TaskRun
from generic_worker.engine.worker import WorkerContext
from generic_worker.errors import ExecutionErrors, TaskError

log = logging.getLogger(__name__)

POLL_INTERVAL = 5.0
SPOT_TERMINATION = "AWS has issued a spot termination - need to abort task"


class SpotTerminationFeature(FeatureBase):
    """Watches the EC2 spot termination notice while tasks run."""

    name = "Spot Termination"

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled
        self.running: set[TaskRun] = set()
        self.terminating = False
        self._worker: WorkerContext | None = None
        self._poller: asyncio.Task[None] | None = None

    async def initialise(self, worker: WorkerContext) -> None:
        """Keep the worker context: its metadataBaseURL and HTTP session (only with --configure-for-aws)."""
        self._worker = worker

    def is_requested(self, task: TaskRun) -> bool:
        """Every task is watched, but only on a worker started with --configure-for-aws."""
        return self.enabled

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """The per-task part: registers the run with the shared poller."""
        return _Watched(self, task)

    def watch(self, task: TaskRun) -> None:
        """A task started: poll while it runs (one poller for all running tasks)."""
        self.running.add(task)
        if self.terminating:
            task.abort(TaskError.worker_shutdown(SPOT_TERMINATION))
        elif self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="spot termination poller")

    async def unwatch(self, task: TaskRun) -> None:
        """A task ended: stop polling when nothing runs any more."""
        self.running.discard(task)
        if not self.running and self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    async def _poll(self) -> None:
        assert self._worker is not None
        while self.running and not self.terminating:
            metadata = MetadataService(self._worker.services.session, self._worker.config.metadata_base_url)
            try:
                status = await metadata.spot_termination_status()
            except (aiohttp.ClientError, TimeoutError) as e:
                log.warning("Could not check for a spot termination notice: %s", e or type(e).__name__)
            else:
                if status == 200:
                    self._terminate()
                    return
                if status != 404:
                    log.warning("Unexpected HTTP %s from the spot termination notice", status)
            await asyncio.sleep(POLL_INTERVAL)

    def _terminate(self) -> None:
        self.terminating = True
        log.error("%s", SPOT_TERMINATION)
        for task in list(self.running):
            task.abort(TaskError.worker_shutdown(SPOT_TERMINATION))

    async def close(self) -> None:
        """Stop the poller at worker exit."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller


class _Watched(TaskFeatureBase):
    def __init__(self, feature: SpotTerminationFeature, task: TaskRun) -> None:
        self.feature = feature
        self.task = task

    async def start(self) -> None:
        self.feature.watch(self.task)

    async def stop(self, errors: ExecutionErrors) -> None:
        await self.feature.unwatch(self.task)
