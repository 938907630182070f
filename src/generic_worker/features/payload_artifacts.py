"""Payload artifacts: after the commands, upload `payload.artifacts` (in parallel, bounded).

Names reserved by other features are skipped with the seed's warning. A missing or invalid
file becomes an `error` artifact and fails the task unless the entry is `optional`.
"""

from __future__ import annotations

from generic_worker.artifacts import Artifact, resolve_payload_artifacts
from generic_worker.engine.feature import FeatureBase, TaskFeature, TaskFeatureBase
from generic_worker.engine.taskrun import TaskRun
from generic_worker.errors import ExecutionErrors
from generic_worker.payload.model import as_payload


class PayloadArtifactsFeature(FeatureBase):
    """Uploads the artifacts the payload lists."""

    name = "Artifact Uploads"

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """The per-task part."""
        return _PayloadArtifacts(task)


class _PayloadArtifacts(TaskFeatureBase):
    def __init__(self, task: TaskRun) -> None:
        self.task = task

    async def stop(self, errors: ExecutionErrors) -> None:
        task = self.task
        entries = as_payload(task.payload).get("artifacts", [])
        if not entries:
            return
        # As the task user (multiuser): a file it could not read becomes an error artifact
        # (file-not-readable-on-worker), never an upload of root's view of it.
        resolved = await task.as_task_user(resolve_payload_artifacts, entries, task.task_dir, task.expires)
        chosen: list[Artifact] = []
        for artifact in resolved:
            owner = task.reserved_by(artifact.name)
            if owner is not None:
                task.log.warn(
                    f"Not uploading artifact {artifact.name} found in task.payload.artifacts section, "
                    f"since this will be uploaded later by {owner}"
                )
                continue
            chosen.append(artifact)
        for error in await task.publish_all(chosen):
            errors.add(error)
