"""Resource monitor (`features.resourceMonitor`, default on): memory statistics and OOM protection.

While the commands run, system memory is sampled every half second. At the end the log gets
upstream's summary (average available, average used, peak used, total). When memory use is at
or above `maxMemoryUsagePercent` *and* available memory is below `minAvailableMemoryBytes` for
`allowedHighMemoryDurationSecs` in a row, the task is aborted (`failed/failed`) before the kernel's
OOM killer picks a victim that could be the worker itself; `disableOOMProtection` only warns.
"""

from __future__ import annotations

import asyncio
import time

import psutil

from generic_worker.engine.feature import FeatureBase, TaskFeature, TaskFeatureBase
from generic_worker.engine.taskrun import TaskRun
from generic_worker.errors import ExecutionErrors, TaskError

SAMPLE_INTERVAL = 0.5
"""Seconds between samples (upstream's period)."""


def mebibytes(n: float) -> str:
    """Bytes as the log shows them."""
    return f"{n / (1 << 20):.2f}MiB"


class ResourceMonitorFeature(FeatureBase):
    """Watches system memory while a task's commands run."""

    name = "Resource Monitor"

    def is_enabled(self, task: TaskRun) -> bool:
        """`enableResourceMonitor`."""
        return task.config.enable_resource_monitor

    def is_requested(self, task: TaskRun) -> bool:
        """`features.resourceMonitor`, on unless the payload switches it off."""
        return bool(task.payload.get("features", {}).get("resourceMonitor", True))

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """The per-task part."""
        return _Monitor(task)


class _Monitor(TaskFeatureBase):
    def __init__(self, task: TaskRun) -> None:
        self.task = task
        self.samples = 0
        self.available_total = 0.0
        self.used_total = 0.0
        self.peak_used = 0
        self.total = psutil.virtual_memory().total
        self.high_since: float | None = None
        self.warned = False
        self.sampler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.sample()
        self.sampler = asyncio.create_task(
            self._sample_forever(), name=f"resource monitor {self.task.task_id}"
        )

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL)
            self.sample()

    def sample(self) -> None:
        """Take one sample and act on sustained memory pressure."""
        memory = psutil.virtual_memory()
        used = memory.total - memory.available
        self.samples += 1
        self.available_total += memory.available
        self.used_total += used
        self.peak_used = max(self.peak_used, used)
        config = self.task.config
        pressure = (
            memory.percent >= config.max_memory_usage_percent
            and memory.available < config.min_available_memory_bytes
        )
        if not pressure:
            self.high_since = None
            return
        now = time.monotonic()
        if self.high_since is None:
            self.high_since = now
        if now - self.high_since < config.allowed_high_memory_duration_secs:
            return
        floor = mebibytes(config.min_available_memory_bytes)
        limits = f"{config.max_memory_usage_percent}% used, {floor} available"
        message = (
            f"Memory usage {memory.percent:.1f}% with {mebibytes(memory.available)} available has been "
            f"too high for {config.allowed_high_memory_duration_secs}s (limits: {limits})"
        )
        if config.disable_oom_protection:
            if not self.warned:
                self.warned = True
                self.task.log.warn(message + "; not aborting since disableOOMProtection is set")
            return
        self.task.log.warn(message + "; aborting the task")
        self.task.abort(TaskError.failure(f"Task aborted: {message}"))

    async def stop(self, errors: ExecutionErrors) -> None:
        if self.sampler is not None:
            self.sampler.cancel()
        n = max(self.samples, 1)
        log = self.task.log
        log.info(f"Average Available System Memory: {mebibytes(self.available_total / n)}")
        log.info(f"Average System Memory Used: {mebibytes(self.used_total / n)}")
        log.info(f"Peak System Memory Used: {mebibytes(self.peak_used)}")
        log.info(f"Total System Memory: {mebibytes(self.total)}")
