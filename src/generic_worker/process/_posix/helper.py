"""Helper programs of the worker itself that run at idle CPU priority (the log compressor).

A helper is a child of the worker (not of any task: it carries no task marker, so no sweep takes
it) with the given descriptors inherited and a pipe on its stdin. It is moved to `SCHED_IDLE`
right after it starts (nice 19 where that policy does not exist): it uses only CPU time nobody
else wants. Being a process, not a thread, it shares no GIL with the worker, so a starved helper
can never hold up the worker's own threads (the output pumps). It ends at EOF on its stdin, or
at once with `kill()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Sequence

from . import registry

_log = logging.getLogger(__name__)


class IdleHelper:
    """A running helper program; `send` lines to its stdin, `kill` and `wait` it."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        assert proc.stdin is not None
        self._stdin = proc.stdin.fileno()
        os.set_blocking(self._stdin, False)

    @classmethod
    def start(
        cls, module: str, args: Sequence[str], pass_fds: Sequence[int], *, idle: bool = True
    ) -> IdleHelper:
        """Run `python -m module args...` with `pass_fds` inherited; raises OSError if it cannot.

        `idle=False` leaves it at normal priority (tests, on machines too busy for idle work).
        """
        # Registered as waited for before anything could reap it (`reap_orphans` between tasks).
        with registry.LOCK:
            proc = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                pass_fds=tuple(pass_fds),
                close_fds=True,
            )
            registry.expect(proc.pid)
        if idle:
            _lower_priority(proc.pid)
        return cls(proc)

    @property
    def pid(self) -> int:
        """The helper's process id."""
        return self._proc.pid

    def send(self, line: bytes) -> bool:
        """Write one line to its stdin without blocking; False if it did not fit or it is gone."""
        try:
            return os.write(self._stdin, line) == len(line)
        except (BlockingIOError, BrokenPipeError):
            return False

    def kill(self) -> None:
        """Stop it at once (SIGKILL); safe to call more than once."""
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    async def wait(self) -> int:
        """Reap it (in a thread: Popen.wait blocks); its exit status."""
        code = await asyncio.to_thread(self._proc.wait)
        with registry.LOCK:
            registry.release_waited(self._proc.pid)
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        return code


def _lower_priority(pid: int) -> None:
    policy = getattr(os, "SCHED_IDLE", None)
    try:
        if policy is not None:
            os.sched_setscheduler(pid, policy, os.sched_param(0))
        else:
            os.setpriority(os.PRIO_PROCESS, pid, 19)
    except OSError as err:  # it runs at normal priority then: slower tasks, nothing worse
        _log.warning("could not lower the priority of helper %d: %s", pid, err)
