"""run_capture, the thread exit watcher macOS uses, orphan reaping, and resource hygiene."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path

from generic_worker.process import Command, TaskProcesses, reap_orphans, run_capture
from generic_worker.process._posix import registry
from generic_worker.process._posix.exitwatch import watch_exit
from generic_worker.process._posix.spawn import spawn

from .proc_helpers import Collector, env_for, exists, pids_in, sh


async def test_run_capture_output_and_exit_code(tmp_path: Path) -> None:
    captured = await run_capture(["sh", "-c", "pwd; echo oops >&2; exit 7"], cwd=tmp_path)
    assert captured.exit_code == 7 and not captured.succeeded and not captured.timed_out
    assert captured.text == f"{tmp_path}\noops\n"
    assert captured.describe() == "exit status 7"


async def test_run_capture_feeds_input_and_uses_the_worker_env_by_default() -> None:
    os.environ["GW_CAPTURE_PROBE"] = "probe-value"
    try:
        captured = await run_capture(
            ["sh", "-c", 'cat; echo " $GW_CAPTURE_PROBE"'], input=b"from stdin", timeout=30
        )
    finally:
        del os.environ["GW_CAPTURE_PROBE"]
    assert captured.succeeded
    assert captured.output == b"from stdin probe-value\n"


async def test_run_capture_timeout_kills_the_tree(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    script = f'setsid sleep 1000 & echo "pid $!" > {pid_file}; exec sleep 1000'
    started = time.monotonic()
    captured = await run_capture(["sh", "-c", script], timeout=0.3)
    assert time.monotonic() - started < 5
    assert captured.timed_out and not captured.succeeded
    assert captured.result.aborted and captured.result.signal == signal.SIGKILL
    assert captured.describe() == "timed out (signal: killed)"
    [escapee] = pids_in(pid_file.read_bytes())
    assert not exists(escapee)


async def test_run_capture_start_error() -> None:
    captured = await run_capture(["/no/such/helper"])
    assert not captured.result.started and not captured.succeeded
    assert captured.describe() == '"/no/such/helper": no such file'


async def test_thread_exit_watcher(tmp_path: Path) -> None:
    """The fallback macOS uses, exercised on Linux by turning the pidfd off."""
    owner = object()
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        spawned = spawn(Command(("sh", "-c", "exit 5"), tmp_path, env_for("W")), owner, output_fd=devnull)
    finally:
        os.close(devnull)
    exited = await watch_exit(spawned.pid, use_pidfd=False)
    assert exited.status is not None and os.waitstatus_to_exitcode(exited.status) == 5
    assert exited.rusage is not None
    assert not exists(spawned.pid)
    spawned.popen.returncode = 5  # reaped by us: keep Popen's own bookkeeping quiet
    registry.forget_sessions(owner)


async def test_reap_orphans_collects_exited_adoptees(
    task: TaskProcesses, sink: Collector, tmp_path: Path
) -> None:
    # The orphan exits by itself once the test closes the FIFO it reads: a zombie of ours then.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    script = f"setsid sh -c 'read x < {fifo}' & echo \"pid $!\""
    assert (await task.run(sh(script, tmp_path, "T1"))).succeeded
    [orphan] = pids_in(await sink.wait_for(lambda data: b"\n" in data))

    def release() -> None:
        with open(fifo, "w") as writer:
            writer.write("go\n")

    await asyncio.to_thread(release)
    deadline = time.monotonic() + 10
    reaped = 0
    while exists(orphan) and time.monotonic() < deadline:
        reaped += reap_orphans()
        await asyncio.sleep(0.005)  # polling a condition with a deadline
    assert not exists(orphan) and reaped == 1


def our_threads() -> list[str]:
    prefixes = ("pump-", "wait-", "stdin-")
    return [t.name for t in threading.enumerate() if t.name.startswith(prefixes)]


async def test_no_fds_or_threads_left_after_kill_all(tmp_path: Path) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    assert not our_threads()
    procs = TaskProcesses(("TASK_ID", "H"), Collector())
    for _ in range(5):
        await procs.run(sh("sleep 1000 & echo hi", tmp_path, "H"))
    await procs.run(Command(("no-such-gw",), tmp_path, env_for("H")))
    assert await procs.kill_all() == 5
    assert len(os.listdir("/proc/self/fd")) == fds_before
    assert not our_threads()
