"""Resolving a claimed run that could not even be set up (its task directory or log: a full disk).

There is no task log to upload, so the reason goes where the person looking at the task finds
it: an `error` artifact in place of the backing log, with the message, and the worker's log. The
run is resolved `exception/internal-error` (it is the worker's disk, not the task's doing).
"""

from __future__ import annotations

import logging
from typing import Any

from generic_worker.engine.status import StatusManager
from generic_worker.errors import TaskError
from generic_worker.payload.model import DEFAULT_BACKING_LOG_NAME
from generic_worker.tc import TC_ERRORS, ServiceFactory
from generic_worker.tc.failures import describe

log = logging.getLogger(__name__)

REASON = "invalid-resource-on-worker"
"""The error artifact's reason (the queue's closest: the worker's resource was unusable)."""


def backing_log_artifact_name(definition: dict[str, Any]) -> str | None:
    """The backing log's artifact name from an unvalidated task definition; None when it is off."""
    payload = definition.get("payload")
    if not isinstance(payload, dict):
        return DEFAULT_BACKING_LOG_NAME
    features = payload.get("features")
    if isinstance(features, dict) and features.get("backingLog") is False:
        return None
    logs = payload.get("logs")
    name = logs.get("backing") if isinstance(logs, dict) else None
    return name if isinstance(name, str) and name else DEFAULT_BACKING_LOG_NAME


async def resolve_unstartable(services: ServiceFactory, claim: dict[str, Any], message: str) -> None:
    """Publish `message` as the backing log's error artifact, then report internal-error."""
    status = StatusManager(services, claim, poll_interval=60.0, on_lost=lambda _reason: None)
    definition = claim.get("task") or {}
    name = backing_log_artifact_name(definition)
    log.error("task %s run %s: %s", status.task_id, status.run_id, message)
    if name is not None:
        body = {
            "storageType": "error",
            "reason": REASON,
            "message": message[:4096],
            "expires": definition.get("expires"),
        }
        try:
            await status.queue().createArtifact(status.task_id, str(status.run_id), name, body)
        except TC_ERRORS as e:
            log.warning("task %s: could not create error artifact %s: %s", status.task_id, name, describe(e))
    await status.report(TaskError.internal_error(message))
