"""Making the worker a child subreaper (Linux), so no task process can escape by re-parenting.

Without it, a process that leaves its tree (`setsid` + the parent exiting, a double fork) is
adopted by init and is no longer anyone's descendant; with it, every such orphan of ours is adopted
by the worker, where the sweep finds it (deps.md §5.2: 2 survivors of 5 without, 0 with).
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from functools import cache

_log = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


@cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    return ctypes.CDLL(None, use_errno=True)


def enable_subreaper(on: bool = True) -> bool:
    """Make this process a child subreaper (`on=False` undoes it); True when the kernel agreed.

    Call once at worker start, before any task runs. Orphans adopted while it is on stay our
    children. On macOS there is no such thing: it returns False and the sweep falls back to
    scanning every process for the task's marker (see `sweep`).
    """
    libc = _libc()
    if libc is None:
        return False
    rc = libc.prctl(
        ctypes.c_int(_PR_SET_CHILD_SUBREAPER),
        ctypes.c_ulong(1 if on else 0),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
    )
    if rc != 0:
        _log.warning("prctl(PR_SET_CHILD_SUBREAPER) failed: %s", os.strerror(ctypes.get_errno()))
        return False
    return True


def is_subreaper() -> bool:
    """Tell whether orphans of this process are adopted by it (one prctl each time)."""
    libc = _libc()
    if libc is None:
        return False
    value = ctypes.c_int(0)
    rc = libc.prctl(
        ctypes.c_int(_PR_GET_CHILD_SUBREAPER),
        ctypes.byref(value),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
    )
    return rc == 0 and value.value != 0


_PR_SET_PDEATHSIG = 1
_SIGKILL = 9


def die_with_parent() -> None:
    """In a forked child before exec: ask the kernel to SIGKILL us when our parent dies (Linux).

    Used as `preexec_fn`: it only makes one async-signal-safe system call (no allocation, no
    locks), which is what keeps a `preexec_fn` safe in a threaded parent. A no-op elsewhere.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)


# Resolved in the parent at import, so the child does no symbol lookup between fork and exec.
_LIBC = _libc()
_PRCTL = _LIBC.prctl if _LIBC is not None else None
