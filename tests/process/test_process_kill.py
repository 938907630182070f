"""Killing: abort of a hostile tree, kill_all at task end, isolation between tasks: zero survivors."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from generic_worker.process import TaskProcesses, enable_subreaper, run_capture

from .proc_helpers import NOBODY, Collector, as_nobody, as_root, exists, pids_in, sh

# Everything B16 lists, each printing "pid N": a `setsid` escapee, a double-forked daemon (its
# intermediate shell exits, so it is orphaned), a SIGTERM-ignoring child, a plain background
# child; all of them hold the output pipe.
HOSTILE = """
setsid sleep 1000 & echo "pid $!"
( setsid sh -c 'sleep 1000 & echo "pid $!"' & )
sh -c 'trap "" TERM; exec sleep 1000' & echo "pid $!"
sleep 1000 & echo "pid $!"
"""
HOSTILE_PIDS = 4


async def test_abort_kills_the_whole_hostile_tree(sink: Collector, tmp_path: Path) -> None:
    task = TaskProcesses(("TASK_ID", "T1"), sink, grace_period=0.3)
    try:
        running = asyncio.ensure_future(task.run(sh(HOSTILE + 'echo "pid $$"; wait', tmp_path, "T1")))
        pids = pids_in(await sink.wait_for(lambda data: len(pids_in(data)) == HOSTILE_PIDS + 1))
        assert all(exists(pid) for pid in pids)
        started = time.monotonic()
        await task.abort()
        took = time.monotonic() - started
        assert not [pid for pid in pids if exists(pid)]  # dead AND reaped: no zombies
        # The SIGTERM-ignoring child holds out for the whole grace period, then SIGKILL.
        assert 0.3 <= took < 3.0
        result = await running
        assert result.aborted and not result.succeeded
        assert result.signal == signal.SIGTERM  # the shell itself obeyed SIGTERM
        assert task.aborted
        assert await task.kill_all() == 0  # nothing left to kill
    finally:
        await task.kill_all()


async def test_kill_all_after_a_command_that_left_daemons(
    task: TaskProcesses, sink: Collector, tmp_path: Path
) -> None:
    result = await task.run(sh(HOSTILE, tmp_path, "T1"))
    assert result.succeeded  # the command itself exited at once
    pids = pids_in(await sink.wait_for(lambda data: len(pids_in(data)) == HOSTILE_PIDS))
    assert all(exists(pid) for pid in pids)
    assert await task.kill_all() >= 4  # and the double fork's middle shell if not gone yet
    assert not [pid for pid in pids if exists(pid)]
    with pytest.raises(RuntimeError):
        await task.run(sh("true", tmp_path, "T1"))


async def test_abort_before_run_starts_nothing(task: TaskProcesses, tmp_path: Path) -> None:
    await task.abort()
    await task.abort()  # twice, with nothing running: fine
    result = await task.run(sh("touch started", tmp_path, "T1"))
    assert result.aborted and not result.started and result.start_error is None
    assert result.describe() == "aborted before it started"
    assert not (tmp_path / "started").exists()


async def test_abort_while_idle_kills_background_leftovers(
    task: TaskProcesses, sink: Collector, tmp_path: Path
) -> None:
    assert (await task.run(sh('setsid sleep 1000 & echo "pid $!"', tmp_path, "T1"))).succeeded
    [pid] = pids_in(await sink.wait_for(lambda data: b"\n" in data))
    await task.abort()
    assert not exists(pid)


async def test_tasks_do_not_kill_each_other(tmp_path: Path) -> None:
    sinks = {name: Collector() for name in ("A", "B")}
    tasks = {name: TaskProcesses(("TASK_ID", name), sinks[name]) for name in ("A", "B")}
    try:
        pids = {}
        for name, task in tasks.items():
            script = 'setsid sleep 1000 & echo "pid $!"; sleep 1000 & echo "pid $!"'
            assert (await task.run(sh(script, tmp_path, name))).succeeded
            pids[name] = pids_in(await sinks[name].wait_for(lambda d: d.count(b"\n") == 2))
        assert await tasks["A"].kill_all() == 2
        assert not [pid for pid in pids["A"] if exists(pid)]
        assert all(exists(pid) for pid in pids["B"])
        await tasks["B"].abort()
        assert not [pid for pid in pids["B"] if exists(pid)]
    finally:
        for task in tasks.values():
            await task.kill_all()


async def test_orphans_without_the_marker_are_found_by_session_and_descent(
    task: TaskProcesses, sink: Collector, tmp_path: Path
) -> None:
    # 1. clean environment but still in the command's session, orphaned when the command exits;
    # 2. clean environment and a new session, but its (clean, in-session) parent is alive.
    script = 'env -i sleep 1000 & echo "pid $!"\nenv -i sh -c \'setsid sleep 1000 & echo "pid $!"; wait\' &\n'
    assert (await task.run(sh(script, tmp_path, "T1"))).succeeded
    pids = pids_in(await sink.wait_for(lambda data: len(pids_in(data)) == 2))
    assert await task.kill_all() == 3  # the two sleeps and the waiting shell
    assert not [pid for pid in pids if exists(pid)]


async def test_without_subreaper_escapees_are_found_by_marker(
    task: TaskProcesses, sink: Collector, tmp_path: Path
) -> None:
    enable_subreaper(False)  # as on macOS: orphans go to init, not to us
    script = 'setsid sleep 1000 & echo "pid $!"; ( setsid sh -c \'sleep 1000 & echo "pid $!"\' & )'
    assert (await task.run(sh(script, tmp_path, "T1"))).succeeded
    pids = pids_in(await sink.wait_for(lambda data: len(pids_in(data)) == 2))
    assert await task.kill_all() >= 2  # and the double fork's middle shell if not gone yet
    # init reaps them, not us: dead is what we can promise here.
    assert not [pid for pid in pids if _running(pid)]


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@as_root
async def test_task_user_processes_are_found_by_uid(task: TaskProcesses, sink: Collector) -> None:
    # Clean environment, new session, orphaned: only its uid still says whose it is.
    assert (await task.run(as_nobody('env -i setsid sleep 1000 & echo "pid $!"', "T1"))).succeeded
    [pid] = pids_in(await sink.wait_for(lambda data: b"\n" in data))
    assert await task.kill_all() == 1
    assert not exists(pid)


@as_root
async def test_helper_as_a_user_does_not_kill_that_users_other_processes(
    task: TaskProcesses, sink: Collector
) -> None:
    assert (await task.run(as_nobody('setsid sleep 1000 & echo "pid $!"', "T1"))).succeeded
    [pid] = pids_in(await sink.wait_for(lambda data: b"\n" in data))
    helper = await run_capture(["id", "-u"], cwd=Path("/"), user=NOBODY, timeout=30)
    assert helper.output == b"65534\n"
    assert exists(pid)  # the helper's cleanup left the task's process alone
    assert await task.kill_all() == 1


async def test_cancelled_run_leaves_the_command_to_kill_all(
    task: TaskProcesses, sink: Collector, tmp_path: Path
) -> None:
    running = asyncio.ensure_future(task.run(sh('echo "pid $$"; exec sleep 1000', tmp_path, "T1")))
    [pid] = pids_in(await sink.wait_for(lambda data: b"\n" in data))
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert exists(pid)
    assert await task.kill_all() == 1
    assert not exists(pid)
