"""OS groups (`payload.osGroups`): scope-checked; the insecure engine cannot change groups.

Each group needs scope `generic-worker:os-group:<provisionerId>/<workerType>/<group>`. In the
insecure engine commands run as the worker's own user, so only groups that user already belongs
to are accepted (upstream's rule); others are `exception/malformed-payload`. In the multiuser
engine the task user is added to every listed group (a group missing on the machine is
malformed-payload) and commands get them as supplementary groups; deleting the user after the
task drops the memberships. With `features.runTaskAsCurrentUser` nothing is added (upstream's
log line says so).
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
from generic_worker.multiuser.accounts import AccountError, add_to_groups, missing_groups, task_user
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
            return
        if self.task.run_as_current_user:
            self.task.log.info(
                f"Not adding task user to group(s) {self.groups} since we are running as current user."
            )
            return
        missing = missing_groups(self.groups)
        if missing:
            # Upstream's lines and message (a Go slice prints as `[a b]`).
            for group in missing:
                self.task.log.error(f"[osGroups] Could not add task user to OS group {group}: no such group")
            raise TaskError.malformed_payload(f"could not add task user to OS group(s) [{' '.join(missing)}]")
        user = self.task.user
        if user is None:  # the user could not be made: the run is already aborted
            return
        try:
            await add_to_groups(user.name, self.groups)
        except AccountError as e:
            raise TaskError.internal_error(str(e)) from None
        # The user leaves the groups when it is deleted after the task.
        self.task.user = task_user(user.name)
        self.task.log.info(f"Added task user {user.name} to group(s) {self.groups}")
