"""Backing log: uploads `<taskDir>/generic-worker/live_backing.log` as `logs.backing` at the very end.

First in the feature list, so its stop runs last: the uploaded log holds every other feature's
lines, the commands' output and the `[taskcluster:error]` lines, and is uploaded before the
resolution is reported (also for malformed payloads).
"""

from __future__ import annotations

from collections.abc import Sequence

from generic_worker.artifacts import FileArtifact
from generic_worker.d2g.translate import backing_log_name
from generic_worker.engine.feature import FeatureBase, TaskFeature, TaskFeatureBase
from generic_worker.engine.taskrun import TaskRun
from generic_worker.errors import ExecutionErrors
from generic_worker.payload.model import DEFAULT_BACKING_LOG_NAME, is_docker_worker_payload

LOG_CONTENT_TYPE = "text/plain; charset=utf-8"


class BackingLogFeature(FeatureBase):
    """Uploads the task's backing log (`features.backingLog`, default true)."""

    name = "Backing Log"

    def is_requested(self, task: TaskRun) -> bool:
        """On unless the payload switches it off (read defensively: it is not validated yet)."""
        features = task.payload.get("features")
        return not (isinstance(features, dict) and features.get("backingLog") is False)

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """The per-task part."""
        return _BackingLog(task)


class _BackingLog(TaskFeatureBase):
    def __init__(self, task: TaskRun) -> None:
        self.task = task
        logs = task.payload.get("logs")
        name = logs.get("backing") if isinstance(logs, dict) else None
        # d2g: this feature starts before the docker-worker payload is translated; its `log`
        # names the live log, and the backing log as the translation will.
        if is_docker_worker_payload(task.raw_payload) and isinstance(task.payload.get("log"), str):
            name = backing_log_name(task.payload["log"])
        self.name = name if isinstance(name, str) and name else DEFAULT_BACKING_LOG_NAME

    def reserved_artifacts(self) -> Sequence[str]:
        return (self.name,)

    async def start(self) -> None:
        self.task.log_artifact = FileArtifact(
            name=self.name,
            path=self.task.log.path,
            expires=self.task.expires,
            content_type=LOG_CONTENT_TYPE,
            content_encoding="gzip",
        )

    async def stop(self, errors: ExecutionErrors) -> None:
        self.task.log_errors()
        self.task.log.close()
        if self.task.log_artifact is not None:
            errors.add(await self.task.publish(self.task.log_artifact))
