"""Finding every process that belongs to a task, signalling them, and reaping what we adopted.

A process belongs to a task when any of these holds:

1. it is still in the session (or process group) of one of the task's commands;
2. it carries the task's marker, an (env name, value) pair such as `TASK_ID=<taskId>`, in its
   initial environment (`/proc/<pid>/environ`; psutil `environ()`);
3. it runs as one of the task's own OS users (the multiuser engine's fresh `task_<n>` user);
4. it descends from a process that belongs to the task.

Where we look: with the worker a child subreaper (Linux), every orphan of a task is re-parented to
the worker, so the worker's descendants are enough. Without it (macOS, or `enable_subreaper` not
called) escaped orphans belong to init, so every process on the machine is checked; processes of
other users then hide their environment, so only rules 1, 3 and 4 can find them.

Limits: a process that re-execs with a clean environment AND leaves the session AND is orphaned
while the worker is not a subreaper is found by nothing (it no longer descends from us, carries
no marker, and shares no session). A process stuck in uninterruptible sleep (D state) outlives
SIGKILL until its I/O returns; the sweep reports it as a survivor instead of waiting forever. Only
cgroups (`cgroup.kill`) would close these gaps, and they need a delegated cgroup tree.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

from . import registry
from .subreaper import is_subreaper

_GONE = (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError, PermissionError)


@dataclass(frozen=True)
class Scope:
    """What identifies one task's processes (see the module docstring for the rules)."""

    marker: tuple[str, str] | None
    # The task's command processes, which lead its sessions. A session whose number now names a
    # different process (pid reuse after our leader was reaped) is no longer ours.
    leaders: tuple[psutil.Process, ...]
    uids: frozenset[int]


@dataclass(frozen=True)
class Members:
    """What one scan found: the task's live processes, and its zombies that are ours to reap."""

    alive: list[psutil.Process]
    # Exited children of ours still in one of the task's sessions (or of its users): killpg
    # victims and the like, which died before any scan could list them alive.
    zombies: list[int]


def find_members(scope: Scope) -> Members:
    """List the processes that belong to `scope`'s task.

    Blocking: it reads /proc for many processes (about 1-4 ms), so call it through
    `asyncio.to_thread`. It only reads; signalling and reaping stay on the event loop.
    """
    me = os.getpid()
    if is_subreaper():
        candidates = psutil.Process(me).children(recursive=True)
    else:
        candidates = [p for p in psutil.process_iter() if p.pid not in (0, me)]
    sessions = frozenset(_live_sessions(scope.leaders))
    members: dict[int, psutil.Process] = {}
    zombies: list[int] = []
    parents: dict[int, int] = {}
    for proc in candidates:
        try:
            parents[proc.pid] = proc.ppid()
            dead = proc.status() == psutil.STATUS_ZOMBIE
        except _GONE:
            continue
        if dead:
            # No environment to read any more; the session and the uid still tell.
            if parents[proc.pid] == me and _belongs(proc, scope, sessions, by_marker=False):
                zombies.append(proc.pid)
        elif _belongs(proc, scope, sessions, by_marker=True):
            members[proc.pid] = proc
    # Rule 4: descendants of members (they may have left the session and cleared their env).
    for proc in candidates:
        if proc.pid in members or proc.pid not in parents or not _alive(proc):
            continue
        ancestor = parents.get(proc.pid)
        while ancestor is not None and ancestor in parents:
            if ancestor in members:
                members[proc.pid] = proc
                break
            ancestor = parents.get(ancestor)
    return Members(alive=list(members.values()), zombies=zombies)


def _live_sessions(leaders: Iterable[psutil.Process]) -> Iterable[int]:
    for leader in leaders:
        try:
            # psutil compares pid + start time since boot: unequal means the number was reused.
            if psutil.Process(leader.pid) != leader:
                continue
        except _GONE:
            pass  # our leader is gone (or a zombie), but members of its session may remain
        yield leader.pid


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except _GONE:
        return False


def _belongs(proc: psutil.Process, scope: Scope, sessions: frozenset[int], *, by_marker: bool) -> bool:
    try:
        if scope.uids and proc.uids().real in scope.uids:
            return True
        if sessions and (os.getsid(proc.pid) in sessions or os.getpgid(proc.pid) in sessions):
            return True
        if by_marker and scope.marker is not None:
            name, value = scope.marker
            return proc.environ().get(name) == value
    except _GONE:
        pass
    return False


def signal_all(procs: Iterable[psutil.Process], signum: int) -> set[int]:
    """Send `signum` to each process; return the pids that were still there to receive it.

    psutil checks each pid still names the same process (create time) before signalling, so a pid
    reused since `find_members` is left alone.
    """
    sent: set[int] = set()
    for proc in procs:
        try:
            proc.send_signal(signum)
        except _GONE:
            continue
        sent.add(proc.pid)
    return sent


async def settle(procs: Iterable[psutil.Process], deadline: float) -> list[psutil.Process]:
    """Wait until each process is dead, reaping those that are our unwaited children.

    Polls with a short backoff (1 ms doubling to 50 ms) until `deadline` (time.monotonic());
    returns the ones still alive then. A zombie counts as dead: when its parent is one of the
    dying, it is re-parented to us as that parent exits, and `reap` collects it afterwards.
    """
    pending = list(procs)
    delay = 0.001
    while True:
        pending = [p for p in pending if not _dead(p)]
        if not pending or time.monotonic() >= deadline:
            return pending
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.05)


def _dead(proc: psutil.Process) -> bool:
    if registry.reap_if_unwaited(proc.pid):
        return True
    try:
        # is_running() is False when the pid now names another process: ours is gone.
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except _GONE:
        return True


def reap(pids: Iterable[int]) -> None:
    """Reap each of `pids` that is now an exited, unwaited child of ours (per pid, WNOHANG)."""
    for pid in pids:
        registry.reap_if_unwaited(pid)


def reap_orphans() -> int:
    """Reap every exited child of this process that no `run()` is waiting for; return how many.

    With the subreaper on, orphans a task left behind that later exit on their own become the
    worker's zombies, and no task sweep can attribute them any more (a zombie has no environment).
    Call this between tasks in the worker process, where `process/` starts every child; in a
    process that also starts children by other means it could reap one of those.
    """
    count = 0
    try:
        children = psutil.Process().children()
    except _GONE:
        return 0
    for child in children:
        if not _alive(child) and registry.reap_if_unwaited(child.pid):
            count += 1
    return count
