"""The POSIX (Linux and macOS) implementation of `generic_worker.process`.

Linux gets the full set: a child-subreaper worker, pidfd exit watching and 1 MiB pipes. macOS runs
the same code with a thread per exit wait, default-sized pipes and a machine-wide marker scan in
place of the subreaper (see `sweep` for what that cannot catch).
"""

from __future__ import annotations

from .capture import run_capture
from .helper import IdleHelper
from .leftovers import Leftover, kill_leftovers
from .subreaper import enable_subreaper, is_subreaper
from .sweep import reap_orphans
from .tasks import TaskProcesses
from .userns import user_namespace_fd

__all__ = [
    "IdleHelper",
    "Leftover",
    "TaskProcesses",
    "enable_subreaper",
    "is_subreaper",
    "kill_leftovers",
    "reap_orphans",
    "run_capture",
    "user_namespace_fd",
]
