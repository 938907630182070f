"""Chain of trust (`features.chainOfTrust`).

Signing needs a key the task cannot read. The insecure engine runs tasks as the worker's own
user, so it always refuses, with the seed's message (TARGET §5). Signing itself belongs to the
multiuser engine.
"""

from __future__ import annotations

from generic_worker.engine.feature import FeatureBase, TaskFeature, TaskFeatureBase
from generic_worker.engine.taskrun import TaskRun
from generic_worker.errors import TaskError
from generic_worker.payload import Engine

KEY_READABLE = (
    "Was expecting attempt to read private chain of trust key as task user to fail - however, it did not!"
)


class ChainOfTrustFeature(FeatureBase):
    """Chain-of-trust certificates for the task's artifacts."""

    name = "Chain of Trust"

    def is_enabled(self, task: TaskRun) -> bool:
        """`enableChainOfTrust`."""
        return task.config.enable_chain_of_trust

    def is_requested(self, task: TaskRun) -> bool:
        """`features.chainOfTrust`."""
        return bool(task.payload.get("features", {}).get("chainOfTrust"))

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """The per-task part."""
        return _ChainOfTrust(task)


class _ChainOfTrust(TaskFeatureBase):
    def __init__(self, task: TaskRun) -> None:
        self.task = task

    def reserved_artifacts(self) -> tuple[str, ...]:
        return (
            "public/chainOfTrust.json.asc",
            "public/chain-of-trust.json",
            "public/chain-of-trust.json.sig",
            "public/logs/certified.log",
        )

    async def start(self) -> None:
        if self.task.engine is Engine.INSECURE:
            raise TaskError.malformed_payload(
                KEY_READABLE
                + "\nThe insecure engine runs tasks as the worker's own user, so a task could read "
                "the signing key: chain of trust needs the multiuser engine (runTasksAsCurrentUser: false)."
            )
        raise TaskError.malformed_payload("chain of trust signing is not available in this release")
