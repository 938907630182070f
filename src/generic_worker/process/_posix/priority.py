"""Idle priority for the calling thread: work that may wait (compressing the log as it grows).

On Linux the thread moves to `SCHED_IDLE`: it runs only on CPU time nobody else wants, so a task
that keeps every core busy is not slowed by it. Where that policy does not exist, the thread's
nice value goes to 19 (Linux-style per-thread nice; elsewhere the whole process's, so there it is
skipped). Lowering one's own priority needs no privilege.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

_log = logging.getLogger(__name__)


def make_current_thread_idle() -> bool:
    """Lower the calling thread to idle priority; True if that worked."""
    tid = threading.get_native_id()
    policy = getattr(os, "SCHED_IDLE", None)
    try:
        if policy is not None:
            os.sched_setscheduler(tid, policy, os.sched_param(0))
            return True
        if sys.platform.startswith("linux"):
            os.setpriority(os.PRIO_PROCESS, tid, 19)
            return True
    except OSError as err:
        _log.debug("could not lower thread %d to idle priority: %s", tid, err)
    return False
