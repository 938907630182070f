"""Task errors carry their own Taskcluster resolution; the first recorded error decides it.

A `TaskError` is either a *failure* (the task's fault: resolved `failed/failed`) or an
*exception* with a reason (`exception/<reason>`). Features raise or record them; the engine
turns the first one into `reportFailed` / `reportException` and uploads the log first.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum


class ExceptionReason(StrEnum):
    """The `reportException` reasons a worker may send."""

    MALFORMED_PAYLOAD = "malformed-payload"
    RESOURCE_UNAVAILABLE = "resource-unavailable"
    INTERNAL_ERROR = "internal-error"
    WORKER_SHUTDOWN = "worker-shutdown"
    INTERMITTENT_TASK = "intermittent-task"
    SUPERSEDED = "superseded"


class TaskError(Exception):
    """An error in one task run, with the resolution it asks for.

    `reason` None means a failure (`failed/failed`); otherwise `exception/<reason>`.
    """

    def __init__(self, message: str, reason: ExceptionReason | None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason

    @property
    def is_failure(self) -> bool:
        """True when the task itself failed (resolved `failed/failed`)."""
        return self.reason is None

    @property
    def resolution(self) -> str:
        """`failed/failed` or `exception/<reason>`, as the queue will show it."""
        return "failed/failed" if self.reason is None else f"exception/{self.reason}"

    def __repr__(self) -> str:
        return f"TaskError({self.message!r}, {self.resolution})"

    @classmethod
    def failure(cls, message: str) -> TaskError:
        """The task failed (non-zero exit, failed mount, missing artifact, max run time...)."""
        return cls(message, None)

    @classmethod
    def malformed_payload(cls, message: str) -> TaskError:
        """The task definition asks for something invalid or not allowed."""
        return cls(message, ExceptionReason.MALFORMED_PAYLOAD)

    @classmethod
    def resource_unavailable(cls, message: str) -> TaskError:
        """A service or resource the task needs was not available."""
        return cls(message, ExceptionReason.RESOURCE_UNAVAILABLE)

    @classmethod
    def internal_error(cls, message: str) -> TaskError:
        """The worker itself went wrong while running this task."""
        return cls(message, ExceptionReason.INTERNAL_ERROR)

    @classmethod
    def worker_shutdown(cls, message: str) -> TaskError:
        """The worker is shutting down and aborted the task (it will be retried)."""
        return cls(message, ExceptionReason.WORKER_SHUTDOWN)

    @classmethod
    def intermittent_task(cls, message: str) -> TaskError:
        """A command exited with a code listed in `onExitStatus.retry`."""
        return cls(message, ExceptionReason.INTERMITTENT_TASK)

    @classmethod
    def superseded(cls, message: str) -> TaskError:
        """Another task supersedes this one; no commands run."""
        return cls(message, ExceptionReason.SUPERSEDED)


class ExecutionErrors:
    """The ordered errors of one task run; the first one decides the resolution."""

    def __init__(self) -> None:
        self._errors: list[TaskError] = []

    def add(self, error: TaskError | None) -> None:
        """Record an error; `None` is ignored so callers can pass results straight through."""
        if error is not None:
            self._errors.append(error)

    @property
    def first(self) -> TaskError | None:
        """The deciding error, or None when the run succeeded."""
        return self._errors[0] if self._errors else None

    def __bool__(self) -> bool:
        return bool(self._errors)

    def __iter__(self) -> Iterator[TaskError]:
        return iter(self._errors)

    def __len__(self) -> int:
        return len(self._errors)


class WorkerShutdown(BaseException):
    """Raised inside the worker to stop everything now; a BaseException so no handler eats it."""
