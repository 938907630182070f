"""`run_capture`: short helper commands the worker itself runs, with their output in memory.

For things like the configured shutdown command or `useradd`: the output is small, so it is
collected whole; a timeout kills the command's whole tree (no grace period: these are our own
helpers, not a task that deserves a chance to clean up).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..model import CapturedResult, Command, TaskUser
from .tasks import TaskProcesses


class _Collector:
    """An `OutputSink` that keeps everything (thread-safe: pumps call it from their threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        with self._lock:
            self._chunks.append(data)

    def value(self) -> bytes:
        with self._lock:
            return b"".join(self._chunks)


async def run_capture(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: TaskUser | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 - the engine's API; it also kills
    input: bytes | None = None,
) -> CapturedResult:
    """Run a helper command to completion and return its result with its combined output.

    `env` defaults to the worker's own environment and `cwd` to the worker's working directory.
    On `timeout` (seconds) the command and everything it started are killed and the result says
    `timed_out`. A command that cannot start gives a result with `start_error`, as `run()` does.
    Whatever the command left running in the background is killed before this returns.
    """
    output = _Collector()
    # No marker and no uid rule: only what this command started is killed, never other
    # processes that happen to run as the same user.
    procs = TaskProcesses(None, output, grace_period=0.0, kill_by_user=False)
    cmd = Command(
        argv=tuple(argv),
        cwd=cwd if cwd is not None else Path.cwd(),
        env=dict(os.environ) if env is None else env,
        user=user,
    )
    running = asyncio.ensure_future(procs.run(cmd, stdin=input))
    try:
        done, _ = await asyncio.wait([running], timeout=timeout)
        timed_out = not done
        if timed_out:
            await procs.abort()
        result = await running
    finally:
        await procs.kill_all()
        running.cancel()  # a no-op unless we were cancelled ourselves
    return CapturedResult(result=result, output=output.value(), timed_out=timed_out)
