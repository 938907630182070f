"""Where mount steps write their `[mounts]` lines: the task log, or the worker's log for GC.

Eviction and purging also happen between tasks (before a claim), where there is no task log;
`WorkerLog` sends the same lines to the worker's own logger then.
"""

from __future__ import annotations

import logging
from typing import Protocol


class MountLog(Protocol):
    """The two levels mount steps use (`TaskLog` has them, with the seed's prefixes)."""

    def info(self, message: str) -> None:
        """An informational line."""

    def warn(self, message: str) -> None:
        """A warning line."""


class WorkerLog:
    """A `MountLog` writing to the worker's logger (no task is running)."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def info(self, message: str) -> None:
        """Log at INFO."""
        self._logger.info("%s", message)

    def warn(self, message: str) -> None:
        """Log at WARNING."""
        self._logger.warning("%s", message)
