"""`TaskProcesses`: everything one task run starts, and the guarantee it all ends with the task.

Each command gets its own session, its own output pipe and pump thread (or, when the sink is a
`DirectSink` that agrees, the sink's file itself as stdout and stderr: direct.py), and an exit
watcher. The
task's processes are found again for killing by the rules in `sweep` (session, marker, task user,
descent). All state changes happen on the event loop; only /proc scans and pipe copying run in
threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass

import psutil

from ..model import Command, DirectSink, OutputSink, Result
from . import registry
from .direct import DirectOutput
from .exitwatch import Exit, watch_exit
from .pump import Pump
from .spawn import Spawned, StartError, spawn
from .sweep import Scope, find_members, reap, settle, signal_all

_log = logging.getLogger(__name__)

# SIGKILLed processes die at once unless stuck in the kernel (D state); do not wait forever.
_KILL_TIMEOUT = 10.0
_MAX_SWEEPS = 20  # each round kills what the previous one found spawning; a fork bomb gets 20
# ru_maxrss is in KiB on Linux, in bytes on macOS.
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024


@dataclass(eq=False)
class _Child:
    """One started command and the machinery watching it."""

    spawned: Spawned
    leader: psutil.Process | None  # for pid-reuse checks of its session; None if it vanished
    pump: Pump | DirectOutput
    exited: asyncio.Future[Exit]
    aborted: bool = False

    @property
    def pid(self) -> int:
        return self.spawned.pid


class TaskProcesses:
    """Runs a task's commands and makes sure none of their processes outlives the task.

    One instance per task run. `marker` is an (env name, value) pair present in every
    `Command.env` of this task, e.g. ("TASK_ID", taskId): it recognises processes that escaped the
    command's session and were adopted by the (subreaper) worker. `None` restricts recognition to
    sessions and descent (used for the worker's own helper commands). Each command's combined
    output goes to `output`. `grace_period` is how long `abort()` waits between SIGTERM and SIGKILL.
    With `kill_by_user` (the default), every process of a `TaskUser` that ran one of the commands
    counts as the task's: right for the multiuser engine's fresh per-task users, wrong for a
    helper that merely runs as some existing user (`run_capture` turns it off).
    """

    def __init__(
        self,
        marker: tuple[str, str] | None,
        output: OutputSink,
        *,
        grace_period: float = 5.0,
        kill_by_user: bool = True,
    ) -> None:
        self._marker = marker
        self._kill_by_user = kill_by_user
        self._output = output
        self._grace = grace_period
        self._owner = object()  # our identity in the worker-wide session registry
        self._children: list[_Child] = []
        self._uids: set[int] = set()
        self._aborted = False
        self._closed = False
        self._abort_task: asyncio.Task[int] | None = None
        self._close_task: asyncio.Task[int] | None = None

    @property
    def aborted(self) -> bool:
        """Whether `abort()` or `kill_all()` was called: no further command will start."""
        return self._aborted

    @property
    def output_error(self) -> OSError | None:
        """The first error the output sink raised, if any (output after it was discarded)."""
        return next((c.pump.error for c in self._children if c.pump.error is not None), None)

    async def run(self, cmd: Command, *, stdin: bytes | None = None) -> Result:
        """Run `cmd` to completion and return how it ended; never raises because it cannot start.

        Returns once the command exited and everything it wrote before exiting has reached the
        output, even when a background process still holds the pipe open (its later output keeps
        flowing until `kill_all()`). After `abort()` it returns an aborted result without starting
        anything. `stdin` bytes are fed to the command (default: /dev/null). Cancelling `run()`
        leaves the command running until `abort()` or `kill_all()`.
        """
        if self._closed:
            raise RuntimeError("TaskProcesses.run() called after kill_all()")
        if self._aborted:
            return Result.not_started(None, aborted=True)
        try:
            child = self._start(cmd, stdin)
        except StartError as err:
            return Result.not_started(str(err))
        exited = await asyncio.shield(child.exited)
        await child.pump.flush()
        return _result(child, exited)

    def _start(self, cmd: Command, stdin: bytes | None) -> _Child:
        # No await from the spawn until the child is listed: abort() and kill_all() always see it.
        # A sink that agrees gets the command's output written into its file directly (no pipe,
        # no pump: direct.py); otherwise a pipe and a pump thread.
        output = self._output
        pump: Pump | DirectOutput
        direct = output.open_direct() if isinstance(output, DirectSink) else None
        if direct is not None and isinstance(output, DirectSink):
            pump = DirectOutput(output, direct)
        else:
            try:
                pump = Pump(output)
            except OSError as err:  # EMFILE/ENFILE: the worker is out of file descriptors
                reason = os.strerror(err.errno or 0)
                raise StartError(f"no pipe for the command's output: {reason}") from err
        try:
            spawned = spawn(cmd, self._owner, output_fd=pump.write_fd, stdin=stdin)
        except StartError:
            pump.discard()
            raise
        finally:
            pump.close_write_end()
        try:
            leader: psutil.Process | None = psutil.Process(spawned.pid)
        except psutil.NoSuchProcess:  # cannot happen before we reap it; be safe anyway
            leader = None
        child = _Child(spawned, leader, pump, watch_exit(spawned.pid))
        self._children.append(child)
        if cmd.user is not None and self._kill_by_user:
            self._uids.add(cmd.user.uid)
        pump.start(name=f"pump-{spawned.pid}")
        return child

    async def abort(self) -> None:
        """Kill the task's processes now: SIGTERM, `grace_period`, SIGKILL, sweep of escapees.

        The pending `run()` returns an aborted result; later `run()` calls start nothing. Safe to
        call when nothing runs and more than once (later calls wait for the first). Completes even
        if the caller is cancelled.
        """
        self._aborted = True
        if self._abort_task is None:
            for child in self._children:
                if not child.exited.done():
                    child.aborted = True
            self._abort_task = asyncio.ensure_future(self._terminate(self._grace))
        await asyncio.shield(self._abort_task)

    async def kill_all(self) -> int:
        """At task end: SIGKILL every process of this task that is left, reap them, close pipes.

        Returns how many processes it killed. Background daemons, `setsid` escapees and double
        forks all go (see `sweep` for how they are recognised and for the limits); pump threads
        pass on what is still in their pipes and end. Safe to call more than once; `run()` raises
        afterwards. Completes even if the caller is cancelled.
        """
        self._aborted = self._closed = True
        if self._close_task is None:
            for child in self._children:
                if not child.exited.done():
                    child.aborted = True
            self._close_task = asyncio.ensure_future(self._close())
        return await asyncio.shield(self._close_task)

    async def _terminate(self, grace: float) -> int:
        deadline = time.monotonic() + grace
        termed: set[int] = set()
        if grace > 0:
            members = await asyncio.to_thread(find_members, self._scope())
            self._signal_groups(signal.SIGTERM)
            termed = signal_all(members.alive, signal.SIGTERM)
            await settle(members.alive, deadline)
        killed = await self._kill_sweep()
        # Those that obeyed SIGTERM may have died while still their parent's children; all their
        # parents are dead now, so they are ours to reap.
        reap(termed)
        await self._commands_reaped()
        return len(termed | killed)

    async def _close(self) -> int:
        if self._abort_task is not None:
            # Let a running abort finish first; its outcome is reported to abort()'s caller.
            await asyncio.wait([self._abort_task])
        killed = await self._kill_sweep()
        for child in self._children:
            child.pump.stop()
        await asyncio.gather(*(child.pump.join() for child in self._children))
        await self._commands_reaped()
        registry.forget_sessions(self._owner)
        return len(killed)

    async def _commands_reaped(self) -> None:
        """Wait until the exit watchers have reaped every command (they are dead by now)."""
        waiting = [child.exited for child in self._children if not child.exited.done()]
        if waiting:
            _done, late = await asyncio.wait(waiting, timeout=_KILL_TIMEOUT)
            if late:
                _log.error("%d command process(es) did not exit after SIGKILL", len(late))

    async def _kill_sweep(self) -> set[int]:
        """SIGKILL rounds until a scan finds nothing of the task alive; then reap what died."""
        deadline = time.monotonic() + _KILL_TIMEOUT
        killed: set[int] = set()
        for _ in range(_MAX_SWEEPS):
            # Scan, then one atomic killpg per command group (it also catches what forked since
            # the scan), then the escapees the scan found. Rounds repeat until a scan finds
            # nothing alive; its zombies are the group members killpg took before any scan.
            members = await asyncio.to_thread(find_members, self._scope())
            self._signal_groups(signal.SIGKILL)
            if not members.alive:
                reap(members.zombies)
                break
            killed |= signal_all(members.alive, signal.SIGKILL)
            survivors = await settle(members.alive, deadline)
            if survivors:
                pids = sorted(p.pid for p in survivors)
                _log.error("task processes survived SIGKILL (stuck in the kernel?): %s", pids)
                break
        # Every killed process is dead now, so each zombie it left was re-parented to us.
        reap(killed)
        return killed

    def _signal_groups(self, signum: int) -> None:
        # Only while the leader is unreaped: its zombie pins the group id, which otherwise could
        # name somebody else's group after pid reuse. Groups of reaped leaders are found by scan.
        for child in self._children:
            if not child.exited.done():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signum)

    def _scope(self) -> Scope:
        leaders = tuple(
            child.leader
            for child in self._children
            if child.leader is not None and registry.owns_session(child.pid, self._owner)
        )
        # Never by root's or the worker's own uid: that would be everything.
        uids = frozenset(self._uids - {0, os.getuid()})
        return Scope(marker=self._marker, leaders=leaders, uids=uids)


def _result(child: _Child, exited: Exit) -> Result:
    code: int | None = None
    signum: int | None = None
    if exited.status is not None:
        if os.WIFSIGNALED(exited.status):
            signum = os.WTERMSIG(exited.status)
        else:
            code = os.waitstatus_to_exitcode(exited.status)
    ru = exited.rusage
    return Result(
        exit_code=code,
        signal=signum,
        start_error=None,
        aborted=child.aborted,
        wall_time=exited.at - child.spawned.started_at,
        user_time=ru.ru_utime if ru is not None else 0.0,
        system_time=ru.ru_stime if ru is not None else 0.0,
        max_rss_bytes=ru.ru_maxrss * _MAXRSS_UNIT if ru is not None else 0,
    )
