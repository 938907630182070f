"""Max run time: aborts the task when `maxRunTime` seconds have passed since it was claimed.

The clock starts at claim time, so slow mounts count (as in the seed). Unlike the seed, a
deadline that has already passed when the commands are about to start aborts at once: no
command starts after the deadline (seed quirk 19).
"""

from __future__ import annotations

import asyncio

from generic_worker.engine.feature import FeatureBase, TaskFeature, TaskFeatureBase
from generic_worker.engine.taskrun import TaskRun
from generic_worker.errors import ExecutionErrors, TaskError
from generic_worker.timefmt import now

MAX_RUN_TIME_EXCEEDED = "Task aborted - max run time exceeded"


class MaxRunTimeFeature(FeatureBase):
    """Enforces `payload.maxRunTime`."""

    name = "Max Run Time"

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """The per-task part."""
        return _MaxRunTime(task)


class _MaxRunTime(TaskFeatureBase):
    def __init__(self, task: TaskRun) -> None:
        self.task = task
        self.timer: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        task = self.task
        elapsed = (now() - task.claimed_at).total_seconds()
        remaining = float(task.payload["maxRunTime"]) - elapsed
        if remaining <= 0:
            self._fire()
            return
        self.timer = asyncio.get_running_loop().call_later(remaining, self._fire)

    def _fire(self) -> None:
        self.task.abort(TaskError.failure(MAX_RUN_TIME_EXCEEDED))

    async def stop(self, errors: ExecutionErrors) -> None:
        if self.timer is not None:
            self.timer.cancel()
