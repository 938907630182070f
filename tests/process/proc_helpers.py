"""Helpers shared by the process tests: an output collector, pid checks, command builders."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from generic_worker.process import Command, TaskUser

# Whether a pid names any process at all, zombies included (so: killed AND reaped).
exists = psutil.pid_exists

PY = sys.executable


class Collector:
    """An OutputSink that keeps everything and lets a test wait for a condition on it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._buf = bytearray()

    def write(self, data: bytes) -> None:
        with self._cond:
            self._buf += data
            self._cond.notify_all()

    @property
    def data(self) -> bytes:
        with self._cond:
            return bytes(self._buf)

    async def wait_for(self, predicate: Callable[[bytes], bool], limit: float = 20.0) -> bytes:
        """Wait (in a thread, woken by each write) until `predicate(output)` holds."""

        def wait() -> bool:
            with self._cond:
                return self._cond.wait_for(lambda: predicate(bytes(self._buf)), limit)

        assert await asyncio.to_thread(wait), f"timed out; output so far: {self.data[-2000:]!r}"
        return self.data


def pids_in(output: bytes) -> list[int]:
    """The numbers of the `pid N` lines the helper scripts print."""
    return [int(line.split()[1]) for line in output.splitlines() if line.startswith(b"pid ")]


def env_for(marker: str, **extra: str) -> dict[str, str]:
    """A complete, minimal command environment carrying the task marker TASK_ID=`marker`."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "TASK_ID": marker, **extra}


def sh(script: str, cwd: Path, marker: str, **extra: str) -> Command:
    """A `sh -c script` command of task `marker`."""
    return Command(("sh", "-c", script), cwd, env_for(marker, **extra))


def py(code: str, cwd: Path, marker: str) -> Command:
    """A `python -c code` command of task `marker`."""
    return Command((PY, "-c", code), cwd, env_for(marker))


# The multiuser tests run commands as `nobody`; only root may switch user.
NOBODY = TaskUser("nobody", 65534, 65534, (), Path("/nonexistent"))
F = TypeVar("F", bound=Callable[..., Any])


def as_root(test: F) -> F:
    """Mark a test that switches user: it needs root, and is skipped elsewhere."""
    skip = pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")
    marked: F = pytest.mark.root(skip(test))
    return marked


def as_nobody(script: str, marker: str) -> Command:
    """A `sh -c script` command of task `marker`, run as nobody in /."""
    return Command(("sh", "-c", script), Path("/"), env_for(marker), NOBODY)
