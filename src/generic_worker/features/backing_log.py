"""Backing log: uploads `<taskDir>/generic-worker/live_backing.log` as `logs.backing` at the very end.

First in the feature list, so its stop runs last: the uploaded log holds every other feature's
lines, the commands' output and the `[taskcluster:error]` lines, and is uploaded before the
resolution is reported (also for malformed payloads). On a full disk the log is still uploaded:
truncated, with its last line (see `engine.tasklog`), and uncompressed if the gzip copy has no room.

The gzip copy that is uploaded is made while the task writes the log (`artifacts.LogGzip`, on
idle CPU), so at the end only the last few MiB remain to compress and the upload starts at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from generic_worker.artifacts import FileArtifact, LogGzip
from generic_worker.d2g.translate import backing_log_name
from generic_worker.engine.feature import FeatureBase, TaskFeature, TaskFeatureBase
from generic_worker.engine.taskrun import TaskRun
from generic_worker.errors import ExecutionErrors
from generic_worker.payload.model import DEFAULT_BACKING_LOG_NAME, is_docker_worker_payload

log = logging.getLogger(__name__)

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
        self.gzip: LogGzip | None = None

    def reserved_artifacts(self) -> Sequence[str]:
        return (self.name,)

    async def start(self) -> None:
        # Object artifacts are stored identity-encoded: no gzip copy is needed then.
        if not self.task.config.create_object_artifacts:
            try:
                self.gzip = LogGzip(self.task.log)
            except OSError as err:  # no room for the copy: the upload compresses at the end
                log.warning("task %s: no early compression of the log: %s", self.task.task_id, err)
            else:
                self.gzip.start()
        self.task.log_artifact = FileArtifact(
            name=self.name,
            path=self.task.log.path,
            expires=self.task.expires,
            content_type=LOG_CONTENT_TYPE,
            content_encoding="gzip",
            # A full disk must not cost the log: without room for the gzip copy it goes plain.
            plain_if_no_room=True,
            precompressed=self.gzip.finish if self.gzip is not None else None,
        )

    async def stop(self, errors: ExecutionErrors) -> None:
        self.task.log_errors()
        self.task.log.close()
        try:
            artifact = self.task.log_artifact
            if artifact is not None:
                # The truncation line, when the disk had no room even for it, joins the uploaded copy.
                errors.add(await self.task.publish(replace(artifact, trailer=self.task.log.tail)))
        finally:
            if self.gzip is not None:
                await self.gzip.aclose()
                log.info(
                    "task %s: %d of the backing log's %d bytes were compressed while the task ran",
                    self.task.task_id,
                    self.gzip.compressed_early,
                    self.task.log.size,
                )
