"""The Feature interface: every optional or pluggable piece of task behaviour is one Feature.

A `Feature` lives as long as the worker; for each task it is asked whether the task requests it,
whether the worker pool enables it, and then for a `TaskFeature`, which lives for that task run.
Task features declare the scopes they need and the artifact names they reserve (the engine
checks both centrally), then start in list order and stop in reverse order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from generic_worker.errors import ExecutionErrors

if TYPE_CHECKING:
    from generic_worker.engine.taskrun import TaskRun
    from generic_worker.engine.worker import WorkerContext

ScopeRequirement = Sequence[Sequence[str]]
"""Alternatives (any one suffices), each a list of scopes that are all needed."""


@runtime_checkable
class Feature(Protocol):
    """One worker-lifetime feature."""

    name: ClassVar[str]

    async def initialise(self, worker: WorkerContext) -> None:
        """Called once at worker start; raise `FeatureInitError` to stop the worker."""

    def is_enabled(self, task: TaskRun) -> bool:
        """Worker side: whether this worker pool allows the feature (e.g. `enableLiveLog`)."""

    def is_requested(self, task: TaskRun) -> bool:
        """Task side: whether the task asks for it (e.g. `payload.features.liveLog`)."""

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """The per-run part of the feature."""

    async def before_claim(self) -> bool:
        """Worker loop hook, run before every claimWork (e.g. disk-space GC).

        Return False to skip this claim (the worker retries a little later); raise
        `WorkerExit` to stop the worker once running tasks are done.
        """

    async def close(self) -> None:
        """Called once when the worker exits."""


@runtime_checkable
class TaskFeature(Protocol):
    """The part of a feature that lives for one task run."""

    def required_scopes(self) -> ScopeRequirement:
        """Scopes the task must have for this feature."""

    def reserved_artifacts(self) -> Sequence[str]:
        """Artifact names this feature publishes itself (payload artifacts may not use them)."""

    async def start(self) -> None:
        """Set up; raise `TaskError` to stop starting further features."""

    async def stop(self, errors: ExecutionErrors) -> None:
        """Tear down (runs even after a failed start, in reverse order); may `errors.add(...)`."""


class FeatureBase:
    """No-op defaults for `Feature`, so simple features only write what they do."""

    name: ClassVar[str] = "unnamed"

    async def initialise(self, worker: WorkerContext) -> None:
        """Nothing to initialise by default."""

    def is_enabled(self, task: TaskRun) -> bool:
        """Enabled by default (no worker-pool switch)."""
        return True

    def is_requested(self, task: TaskRun) -> bool:
        """Requested by default (always-on feature)."""
        return True

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """Subclasses must provide their task feature."""
        raise NotImplementedError

    async def before_claim(self) -> bool:
        """Nothing to do before claims by default: go ahead and claim."""
        return True

    async def close(self) -> None:
        """Nothing to close by default."""


class TaskFeatureBase:
    """No-op defaults for `TaskFeature`."""

    def required_scopes(self) -> ScopeRequirement:
        """No scopes needed by default."""
        return ()

    def reserved_artifacts(self) -> Sequence[str]:
        """No reserved artifacts by default."""
        return ()

    async def start(self) -> None:
        """Nothing to start by default."""

    async def stop(self, errors: ExecutionErrors) -> None:
        """Nothing to stop by default."""


class WorkerExit(Exception):
    """Raised by a feature's worker-side hook: stop claiming, finish running tasks, exit with `exit_code`."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class FeatureInitError(Exception):
    """A feature could not initialise; the worker exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
