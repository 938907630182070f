"""The only code in the worker that touches OS processes.

The engine describes a command (`Command`, optionally as a `TaskUser`), runs it through the task's
`TaskProcesses` (output streamed into an `OutputSink` through a pipe, or written by the command
straight into a `DirectSink`'s file; a `Result` back) and at task end calls
`kill_all()`, which guarantees that nothing the task started survives it. `run_capture` runs the
worker's own short helper commands. `enable_subreaper` is called once at worker start.
`IdleHelper` runs one of the worker's own helper programs at idle CPU priority (the log
compressor).

Only the platform choice lives here; the implementation is in `_posix` (Linux and macOS).
Windows is out of scope (TARGET.md §13).
"""

from __future__ import annotations

import sys

from .model import (
    CapturedResult,
    Command,
    DirectSink,
    OutputSink,
    Result,
    SplicingSink,
    TaskUser,
    describe_signal,
)

if sys.platform == "win32":  # pragma: no cover - no Windows layer yet
    raise ImportError("generic_worker.process supports Linux and macOS only")

from ._posix import (  # noqa: E402 - after the platform check on purpose
    IdleHelper,
    Leftover,
    TaskProcesses,
    enable_subreaper,
    is_subreaper,
    kill_leftovers,
    reap_orphans,
    run_capture,
    user_namespace_fd,
)

__all__ = [
    "CapturedResult",
    "IdleHelper",
    "Command",
    "DirectSink",
    "Leftover",
    "OutputSink",
    "Result",
    "SplicingSink",
    "TaskProcesses",
    "TaskUser",
    "describe_signal",
    "enable_subreaper",
    "is_subreaper",
    "kill_leftovers",
    "reap_orphans",
    "run_capture",
    "user_namespace_fd",
]
