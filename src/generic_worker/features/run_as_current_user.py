"""`features.runTaskAsCurrentUser` (multiuser engine): commands run as the worker's own user.

As upstream: the task user is still created (and deleted), but the commands, and the file work
done on the task's behalf, run as the worker's user (root). It needs scope
`generic-worker:run-task-as-current-user:<provisionerId>/<workerType>` and the worker pool's
`enableRunTaskAsCurrentUser`, which is off whenever `capacity` > 1: a root task next to another
task could read or kill it. The insecure engine's schema has no such key.
"""

from __future__ import annotations

from generic_worker.engine.feature import FeatureBase, ScopeRequirement, TaskFeature, TaskFeatureBase
from generic_worker.engine.taskrun import TaskRun


class RunTaskAsCurrentUserFeature(FeatureBase):
    """Switches the task's commands to the worker's own user."""

    name = "Run Task As Current User"

    def is_enabled(self, task: TaskRun) -> bool:
        """`enableRunTaskAsCurrentUser`, and never with more than one task at a time."""
        return task.config.enable_run_task_as_current_user and task.config.capacity == 1

    def is_requested(self, task: TaskRun) -> bool:
        """`features.runTaskAsCurrentUser` in a multiuser payload."""
        features = task.payload.get("features") or {}
        return task.config.multiuser and bool(features.get("runTaskAsCurrentUser"))

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """The per-task part."""
        return _RunAsCurrentUser(task)


class _RunAsCurrentUser(TaskFeatureBase):
    def __init__(self, task: TaskRun) -> None:
        self.task = task

    def required_scopes(self) -> ScopeRequirement:
        return [[f"generic-worker:run-task-as-current-user:{self.task.config.task_queue_id}"]]

    async def start(self) -> None:
        self.task.run_as_current_user = True
        self.task.log.info("Running task commands as the worker's own user (features.runTaskAsCurrentUser)")
