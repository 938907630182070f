"""What the process package takes and gives back: commands, users, output sinks and results.

These types are platform-neutral: the engine builds `Command`s, the platform layer runs them and
answers with `Result`s. Nothing here touches an OS process.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = [
    "CapturedResult",
    "Command",
    "OutputSink",
    "Result",
    "SplicingSink",
    "DirectSink",
    "TaskUser",
    "describe_signal",
]


@dataclass(frozen=True)
class TaskUser:
    """The OS user a multi-user task runs as (`None` in a `Command` means the worker's own user).

    The multiuser engine creates a fresh user per task; commands then run with its uid, primary gid
    and exactly these supplementary groups (the worker's own groups are never inherited).
    """

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: Path


@dataclass(frozen=True)
class Command:
    """One command of a task, exactly as it is executed.

    `argv` runs directly, without a shell. A bare program name is looked up on the `PATH` of `env`
    (not the worker's); a name containing `/` is relative to `cwd`. `env` is the complete
    environment: nothing of the worker's environment is added, so the caller decides what leaks.
    """

    argv: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    user: TaskUser | None = None


class OutputSink(Protocol):
    """Where a command's combined stdout and stderr go, as raw bytes in the order written.

    `write` is called from a pump thread, never from the event loop, and possibly from several
    pump threads at once (a background process of an earlier command may still be writing), so
    it must be thread-safe. It should be fast: while it runs the pipe fills and the task's writes
    block.
    An `OSError` it raises is recorded and the output is then discarded (the task keeps running);
    any other exception is a bug and closes the pipe, so the task's later writes fail with EPIPE.
    """

    def write(self, data: bytes) -> None:
        """Take one chunk of output (at most 1 MiB)."""


@runtime_checkable
class SplicingSink(OutputSink, Protocol):
    """An `OutputSink` that can also take output straight from the pipe, kernel to kernel.

    The pump then moves bytes with `splice(2)` instead of reading them into Python and calling
    `write`: the task's output never crosses into user space (Linux only).
    """

    def splice_from(self, pipe_fd: int, limit: int) -> int | None:
        """Move up to `limit` bytes from the non-blocking pipe `pipe_fd` into the sink.

        Returns how many moved (0: end of file, every writer is gone), raises BlockingIOError
        when the pipe is empty, and returns None when it cannot take them this way right now
        (not supported, an error, closed): the pump then reads them and calls `write`.
        """


@runtime_checkable
class DirectSink(OutputSink, Protocol):
    """An `OutputSink` backed by a file that a command may write itself: no pipe, no pump.

    Called on the event loop only. The sink decides per command: `open_direct` answers a new
    descriptor to give the command as its stdout and stderr, or None (use a pipe). `refresh`
    makes everything already written visible (the command's `flush`); `direct_done` pairs each
    descriptor handed out, once that command's processes are gone.
    """

    def open_direct(self) -> int | None:
        """A descriptor for one command's output, or None."""

    def refresh(self) -> bool:
        """Take in what direct writers wrote; whether there was anything new."""

    def direct_done(self) -> None:
        """One direct writer is over."""


# Go's names (syscall.Signal.String on Linux), so `describe()` reads like the seed's
# "signal: killed". Keyed by name because the numbers differ between Linux and macOS.
_SIGNAL_NAMES = {
    "SIGHUP": "hangup",
    "SIGINT": "interrupt",
    "SIGQUIT": "quit",
    "SIGILL": "illegal instruction",
    "SIGTRAP": "trace/breakpoint trap",
    "SIGABRT": "aborted",
    "SIGBUS": "bus error",
    "SIGFPE": "floating point exception",
    "SIGKILL": "killed",
    "SIGUSR1": "user defined signal 1",
    "SIGSEGV": "segmentation fault",
    "SIGUSR2": "user defined signal 2",
    "SIGPIPE": "broken pipe",
    "SIGALRM": "alarm clock",
    "SIGTERM": "terminated",
    "SIGXCPU": "CPU time limit exceeded",
    "SIGXFSZ": "file size limit exceeded",
}


def describe_signal(signum: int) -> str:
    """Name a signal the way Go does ("killed", "terminated", or "signal 42" when unknown)."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
    return _SIGNAL_NAMES.get(name, f"signal {signum}")


@dataclass(frozen=True)
class Result:
    """How one command ended.

    Exactly one of these holds: it could not start (`start_error`), it was never started because
    the task was already aborted (`aborted` with no exit code or signal), it exited (`exit_code`),
    or a signal killed it (`signal`). `aborted` also marks a command we killed (abort, max run time,
    cancellation), whatever its exit status. `start_error` is the reason alone, e.g.
    `"make": executable not found in PATH (/usr/bin:/bin)` or `working directory /x does not
    exist`; the caller adds its "command 2 could not start" context.

    Times and peak memory come from `wait4`'s rusage: they cover the command and the descendants
    it waited for, not background processes it left behind. On Linux the peak RSS is at least
    the worker's own RSS at spawn time: the kernel counts the pre-exec image (Go has the same).
    """

    exit_code: int | None
    signal: int | None
    start_error: str | None
    aborted: bool
    wall_time: float = 0.0
    user_time: float = 0.0
    system_time: float = 0.0
    max_rss_bytes: int = 0

    @classmethod
    def not_started(cls, start_error: str | None, *, aborted: bool = False) -> Result:
        """Make the result of a command that never ran (start failure, or the task was aborted)."""
        return cls(exit_code=None, signal=None, start_error=start_error, aborted=aborted)

    @property
    def started(self) -> bool:
        """Whether a process ran at all (it then has an exit code or a signal)."""
        return self.exit_code is not None or self.signal is not None

    @property
    def succeeded(self) -> bool:
        """Exit status 0 and not killed by us: the only outcome that lets the next command run."""
        return self.exit_code == 0 and not self.aborted

    def describe(self) -> str:
        """Say in Go's words how it ended: "exit status 1", "signal: killed", or the start error."""
        if self.start_error is not None:
            return self.start_error
        if self.signal is not None:
            return f"signal: {describe_signal(self.signal)}"
        if self.exit_code is not None:
            return f"exit status {self.exit_code}"
        if self.aborted:
            return "aborted before it started"
        return "exit status unknown (reaped by someone else)"


@dataclass(frozen=True)
class CapturedResult:
    """What `run_capture` returns: the command's result plus its whole combined output."""

    result: Result
    output: bytes
    timed_out: bool

    @property
    def exit_code(self) -> int | None:
        """The exit status, or None when it did not start, timed out or died by a signal."""
        return self.result.exit_code

    @property
    def succeeded(self) -> bool:
        """Exit status 0 within the timeout."""
        return self.result.succeeded and not self.timed_out

    @property
    def text(self) -> str:
        """The output decoded as UTF-8 (undecodable bytes replaced), for log and error messages."""
        return self.output.decode("utf-8", errors="replace")

    def describe(self) -> str:
        """Why it ended, as `Result.describe`, saying so when the timeout killed it."""
        if self.timed_out:
            return f"timed out ({self.result.describe()})"
        return self.result.describe()
