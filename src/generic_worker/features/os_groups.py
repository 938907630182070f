"""OS groups (`payload.osGroups`): scope-checked; the insecure engine cannot change groups.

Each group needs scope `generic-worker:os-group:<provisionerId>/<workerType>/<group>`. In the
insecure engine commands run as the worker's own user, so only groups that user already belongs
to are accepted (upstream's rule); others are `exception/malformed-payload`.
"""

from __future__ import annotations

import grp
import os

from generic_worker.engine.feature import (
    FeatureBase,
    ScopeRequirement,
    TaskFeature,
    TaskFeatureBase,
)
from generic_worker.engine.taskrun import TaskRun
from generic_worker.errors import TaskError
from generic_worker.payload import Engine


def worker_group_names() -> list[str]:
    """Names of the groups the worker's own user is in."""
    names = []
    for gid in sorted(set(os.getgroups()) | {os.getegid()}):
        try:
            names.append(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return sorted(names)


class OSGroupsFeature(FeatureBase):
    """Checks and applies `payload.osGroups`."""

    name = "OS Groups"

    def is_enabled(self, task: TaskRun) -> bool:
        """`enableOSGroups`."""
        return task.config.enable_os_groups

    def is_requested(self, task: TaskRun) -> bool:
        """Only when the payload lists groups."""
        return bool(task.payload.get("osGroups"))

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """The per-task part."""
        return _OSGroups(task)


class _OSGroups(TaskFeatureBase):
    def __init__(self, task: TaskRun) -> None:
        self.task = task
        self.groups: list[str] = list(task.payload.get("osGroups", []))

    def required_scopes(self) -> ScopeRequirement:
        queue = self.task.config.task_queue_id
        return [[f"generic-worker:os-group:{queue}/{group}" for group in self.groups]]

    async def start(self) -> None:
        if self.task.engine is Engine.INSECURE:
            allowed = worker_group_names()
            unsupported = [g for g in self.groups if g not in allowed]
            if unsupported:
                raise TaskError.malformed_payload(
                    f"task payload contains unsupported osGroups: {unsupported}\n"
                    f"allowed values (on this worker pool): {allowed}"
                )
            self.task.log.info(
                f"Not adding task user to group(s) {self.groups} since we are running as current user."
            )
