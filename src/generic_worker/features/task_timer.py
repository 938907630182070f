"""Task timer: `=== Task Finished ===` and `Task Duration: <d>` once the commands are done.

Placed just before the command executor, so its stop runs right after the commands and before
payload artifacts are uploaded, as in the seed's log.
"""

from __future__ import annotations

import time

from generic_worker.engine.feature import FeatureBase, TaskFeature, TaskFeatureBase
from generic_worker.engine.taskrun import TaskRun
from generic_worker.errors import ExecutionErrors
from generic_worker.timefmt import go_duration


class TaskTimerFeature(FeatureBase):
    """Logs how long the commands took."""

    name = "Task Timer"

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """The per-task part."""
        return _TaskTimer(task)


class _TaskTimer(TaskFeatureBase):
    def __init__(self, task: TaskRun) -> None:
        self.task = task
        self.started = 0.0

    async def start(self) -> None:
        self.started = time.monotonic()

    async def stop(self, errors: ExecutionErrors) -> None:
        self.task.log.info("=== Task Finished ===")
        self.task.log.info(f"Task Duration: {go_duration(time.monotonic() - self.started)}")
