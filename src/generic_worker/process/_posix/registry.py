"""The worker-wide record of which child processes have a waiter and which sessions are whose.

Every process `process/` starts is registered here, under one lock, in the same critical section
as the spawn. That record lets the sweep reap adopted orphans (with per-pid `waitpid`, never
`waitpid(-1)`) without ever stealing the exit status of a command that `run()` is still waiting
for, and lets a task recognise its own sessions without being fooled by pid reuse.
"""

from __future__ import annotations

import os
import threading

# Guards _waited and _sessions, and makes "is anyone waiting for this pid? no: reap it" atomic
# with respect to "spawn, then register the new pid".
LOCK = threading.Lock()

# pids whose exit status belongs to a waiter (exitwatch); nobody else may reap them.
_waited: set[int] = set()

# session (= process group) leader pid -> the owner token of the TaskProcesses that started it.
# A session id pins its number while any member lives, but once the session is empty the number
# can come back as a new process: the newest spawn wins, so a stale owner stops matching.
_sessions: dict[int, object] = {}


def register(pid: int, owner: object) -> None:
    """Record a freshly spawned child: someone waits for it and it leads `owner`'s session.

    Call with `LOCK` held, right after the spawn.
    """
    _waited.add(pid)
    _sessions[pid] = owner


def expect(pid: int) -> None:
    """Record a child that is not a task's (a helper) but is waited for. Call with `LOCK` held."""
    _waited.add(pid)


def waited_for(pid: int) -> bool:
    """Whether a waiter owns the exit status of `pid` (call with `LOCK` held)."""
    return pid in _waited


def release_waited(pid: int) -> None:
    """Forget `pid` once its waiter reaped it: the number is free again (call with `LOCK` held)."""
    _waited.discard(pid)


def owns_session(pid: int, owner: object) -> bool:
    """Whether session `pid` is still `owner`'s (not reused by a newer spawn)."""
    with LOCK:
        return _sessions.get(pid) is owner


def forget_sessions(owner: object) -> None:
    """Drop every session of `owner` (its task is over and all its processes are gone)."""
    with LOCK:
        for pid in [pid for pid, who in _sessions.items() if who is owner]:
            del _sessions[pid]


def reap_if_unwaited(pid: int) -> bool | None:
    """Reap `pid` if it is an exited child of ours that no waiter owns.

    Returns True when reaped, False when it is our child but still running (or a waiter owns it),
    and None when it is not our child (or already reaped by someone else).
    """
    with LOCK:
        if pid in _waited:
            return False
        try:
            reaped, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        return reaped == pid
