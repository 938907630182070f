"""Payload features this worker does not provide: a clear malformed-payload instead of silence.

`features.interactive`, `features.loopbackAudio`, `features.loopbackVideo` and
`taskclusterProxyInterface: docker-bridge` are valid payload
(today's upstream schema) but need machinery this worker does not have (TARGET §13).
`docker-bridge` is provided where d2g is enabled (Docker is there): see docs/d2g.md.
"""

from __future__ import annotations

from generic_worker.engine.feature import FeatureBase, TaskFeature, TaskFeatureBase
from generic_worker.engine.taskrun import TaskRun
from generic_worker.errors import TaskError

UNSUPPORTED_FEATURES = ("interactive", "loopbackAudio", "loopbackVideo")


def requested_unsupported(payload: dict[str, object], docker_bridge: bool = False) -> list[str]:
    """The unsupported things a (validated) payload asks for (`docker_bridge`: Docker is in use)."""
    features = payload.get("features") or {}
    assert isinstance(features, dict)
    found = [f"features.{name}" for name in UNSUPPORTED_FEATURES if features.get(name)]
    if payload.get("taskclusterProxyInterface") == "docker-bridge" and not docker_bridge:
        found.append("taskclusterProxyInterface: docker-bridge")
    return found


class UnsupportedFeature(FeatureBase):
    """Rejects tasks that ask for what this worker cannot do."""

    name = "Unsupported Features"

    def is_requested(self, task: TaskRun) -> bool:
        """Only when the payload asks for something unsupported."""
        return bool(requested_unsupported(dict(task.payload), task.config.d2g.enable_d2g))

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """The per-task part."""
        return _Unsupported(task)


class _Unsupported(TaskFeatureBase):
    def __init__(self, task: TaskRun) -> None:
        self.task = task

    async def start(self) -> None:
        names = ", ".join(requested_unsupported(dict(self.task.payload), self.task.config.d2g.enable_d2g))
        raise TaskError.malformed_payload(
            f"this task is attempting to use {names}, which this worker does not support"
        )
