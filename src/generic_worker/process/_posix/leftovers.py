"""Finding and killing what an earlier run of the worker left behind (after a crash or SIGKILL).

A starting worker cannot know the sessions of an earlier worker process, so it recognises that
worker's task processes by what survives the crash:

1. the environment every task command starts with carries `TASK_WORKDIR=<tasksDir>/task_<n>`
   (forced, a task cannot override it), so a process whose initial environment names a task
   directory under *this* worker's `tasksDir` was started by an earlier run of this worker;
2. in the multiuser engine, every process of a leftover `task_<n>` user (whose home is under
   `tasksDir`) belongs to an earlier task, whatever its environment.

Other workers on the same machine use other task directories and other users, so they are left
alone. Limit: a process of the insecure engine that re-exec'd with a clean environment matches
neither rule (the multiuser engine's uid rule has no such gap).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Collection
from dataclasses import dataclass

import psutil

_GONE = (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError, PermissionError)
_KILL_ROUNDS = 10


@dataclass(frozen=True)
class Leftover:
    """One killed process of an earlier run, for the start-up log."""

    pid: int
    uid: int
    why: str
    cmdline: str


def _matches(proc: psutil.Process, prefix: str | None, uids: Collection[int]) -> str | None:
    try:
        uid = proc.uids().real
        if uid in uids:
            return f"runs as leftover task user uid {uid}"
        workdir = proc.environ().get("TASK_WORKDIR", "")
    except _GONE:
        return None
    if prefix is not None and workdir.startswith(prefix):
        return f"started in {workdir}"
    return None


async def kill_leftovers(tasks_dir: str | None, uids: Collection[int]) -> list[Leftover]:
    """SIGKILL every process left by earlier runs of a worker using `tasks_dir`; return them.

    `tasks_dir` (fully resolved) None: only the uid rule (used when one task user is removed).
    Never uid 0.
    Repeats the scan until it finds nothing, so a leftover that forks while being killed is
    caught too. Scans run in a thread (they read /proc for every process).
    """
    prefix = None if tasks_dir is None else os.path.join(tasks_dir, "task_")
    wanted = frozenset(uids) - {0}
    killed: dict[int, Leftover] = {}
    for _ in range(_KILL_ROUNDS):
        found = await asyncio.to_thread(_scan_and_kill, prefix, wanted, killed)
        if not found:
            break
        await _wait_dead(found, time.monotonic() + 5.0)
    return list(killed.values())


def _scan_and_kill(
    prefix: str | None, uids: frozenset[int], killed: dict[int, Leftover]
) -> list[psutil.Process]:
    me = os.getpid()
    found = []
    for proc in psutil.process_iter():
        if proc.pid in (0, 1, me):
            continue
        why = _matches(proc, prefix, uids)
        if why is None:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            entry = Leftover(proc.pid, proc.uids().real, why, " ".join(proc.cmdline())[:200])
            proc.send_signal(signal.SIGKILL)
        except _GONE:
            continue
        found.append(proc)
        killed.setdefault(proc.pid, entry)
    return found


async def _wait_dead(procs: list[psutil.Process], deadline: float) -> None:
    """Wait until each process is gone or a zombie (its parent, not us, reaps it)."""
    delay = 0.001
    while procs and time.monotonic() < deadline:
        procs = [p for p in procs if _alive(p)]
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except _GONE:
        return False
