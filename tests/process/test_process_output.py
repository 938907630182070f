"""Output: complete, in order, interleaved, never lost at exit, never waiting for EOF forever."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
from pathlib import Path

from generic_worker.engine.tasklog import TaskLog
from generic_worker.process import SplicingSink, TaskProcesses

from .proc_helpers import Collector, py, sh

BLOCK = 64 << 10
BLOCKS = 1024  # 64 MiB in all

# Alternates 64 KiB blocks between stdout and stderr, each block numbered, each write complete.
WRITER = f"""
import os
for i in range({BLOCKS}):
    fd = 1 + i % 2
    head = b"%s%08d:" % (b"OE"[i % 2 : i % 2 + 1], i)
    view = memoryview(head + b"x" * ({BLOCK} - len(head) - 1) + b"\\n")
    while view:
        view = view[os.write(fd, view):]
"""


def expected_stream() -> bytes:
    parts = []
    for i in range(BLOCKS):
        head = b"%s%08d:" % (b"OE"[i % 2 : i % 2 + 1], i)
        parts.append(head + b"x" * (BLOCK - len(head) - 1) + b"\n")
    return b"".join(parts)


async def test_large_output_complete_in_order_and_interleaved(
    task: TaskProcesses, sink: Collector, tmp_path: Path
) -> None:
    result = await task.run(py(WRITER, tmp_path, "T1"))
    assert result.succeeded
    data = sink.data
    assert len(data) == BLOCK * BLOCKS
    assert hashlib.sha256(data).digest() == hashlib.sha256(expected_stream()).digest()


async def test_output_just_before_exit_is_never_lost(
    task: TaskProcesses, sink: Collector, tmp_path: Path
) -> None:
    # A background sleep keeps the pipe open, so run() cannot rely on EOF: it must drain.
    script = "sleep 1000 & head -c 3000000 /dev/zero | tr '\\0' a; printf END"
    for round_ in range(10):
        result = await task.run(sh(script, tmp_path, "T1"))
        assert result.succeeded
        assert len(sink.data) == (round_ + 1) * 3_000_003
        assert sink.data.endswith(b"a" * 1000 + b"END")
    for round_ in range(30):
        await task.run(sh("sleep 1000 & printf last-words", tmp_path, "T1"))
        assert sink.data.endswith(b"END" + b"last-words" * (round_ + 1))
    assert await task.kill_all() == 40


async def test_pipe_held_by_grandchild_does_not_hang_and_later_output_flows(
    task: TaskProcesses, sink: Collector, tmp_path: Path
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # The background `cat` holds the pipe; it prints whatever the test writes into the FIFO.
    result = await task.run(sh(f"cat {fifo} & echo started", tmp_path, "T1"))
    assert result.succeeded
    assert sink.data == b"started\n"

    def feed() -> None:
        with open(fifo, "wb") as writer:  # blocks until cat has opened it
            writer.write(b"late output\n")

    await asyncio.to_thread(feed)
    await sink.wait_for(lambda data: data.endswith(b"late output\n"))
    assert sink.data == b"started\nlate output\n"


async def test_sink_failure_does_not_block_the_task(tmp_path: Path) -> None:
    class FullDisk:
        calls = 0

        def write(self, data: bytes) -> None:
            self.calls += 1
            raise OSError(errno.ENOSPC, "No space left on device")

    full = FullDisk()
    procs = TaskProcesses(("TASK_ID", "T1"), full)
    try:
        # 8 MiB: far more than the pipe holds, so a pump that stopped reading would hang this.
        result = await procs.run(sh("head -c 8000000 /dev/zero", tmp_path, "T1"))
        assert result.succeeded
        assert full.calls == 1
        assert isinstance(procs.output_error, OSError)
        assert procs.output_error.errno == errno.ENOSPC
    finally:
        await procs.kill_all()


async def test_concurrent_commands_keep_their_output_apart(tmp_path: Path) -> None:
    sinks = [Collector(), Collector()]
    tasks = [TaskProcesses(("TASK_ID", f"C{i}"), sinks[i]) for i in range(2)]
    try:
        script = "for i in $(seq 2000); do echo {name}-$i; done"
        results = await asyncio.gather(
            *(t.run(sh(script.format(name=f"C{i}"), tmp_path, f"C{i}")) for i, t in enumerate(tasks))
        )
        assert all(r.succeeded for r in results)
        for i, s in enumerate(sinks):
            expected = "".join(f"C{i}-{n}\n" for n in range(1, 2001)).encode()
            assert s.data == expected
    finally:
        for t in tasks:
            await t.kill_all()


async def test_splicing_sink_gets_everything_exactly_even_before_exit(tmp_path: Path) -> None:
    # The task log is a SplicingSink: output moves pipe -> file inside the kernel (Linux), and
    # run() still returns only once all of it arrived, even with the pipe held open.
    log = TaskLog(tmp_path / "log")
    procs = TaskProcesses(("TASK_ID", "T1"), log, grace_period=0.3)
    try:
        assert isinstance(log, SplicingSink)
        for _ in range(3):
            result = await procs.run(py(WRITER, tmp_path, "T1"))
            assert result.succeeded
            log.write(b"between commands\n")
        result = await procs.run(sh("sleep 1000 & printf last-words", tmp_path, "T1"))
        assert result.succeeded
        assert log.size == 3 * (BLOCK * BLOCKS + 17) + 10
    finally:
        await procs.kill_all()
        log.close()
    data = (tmp_path / "log").read_bytes()
    assert data == (expected_stream() + b"between commands\n") * 3 + b"last-words"


def test_the_batching_wait_follows_the_writers_rate() -> None:
    """The pump waits for about half a pipe at the writer's rate: shorter for a faster writer."""
    import select
    import time

    from generic_worker.process._posix import pump as pumps

    sink = Collector()
    pump = pumps.Pump(sink)
    try:
        waker = select.poll()
        waker.register(pump._wake_r, select.POLLIN)
        pump._wake()  # the batching wait returns at once: no real waiting in this test
        # The pipe "emptied" 1 ms before each look (taken just before it, so a slow machine does
        # not stretch it): 1/8 pipe in 1 ms asks for the longest wait (the cap), a full pipe in
        # 1 ms (the writer blocked) for a quarter of it.
        os.write(pump.write_fd, b"z" * (pump._target // 4))
        pump._batch(waker, time.monotonic() - 0.001)
        slow = pump._wait
        os.read(pump._fd, pumps.CHUNK)
        os.write(pump.write_fd, b"z" * pump._target * 2)
        pump._batch(waker, time.monotonic() - 0.001)
        assert pumps.MIN_WAIT <= pump._wait < slow <= pumps.BATCH_WAIT_MS / 1000
    finally:
        pump.discard()


async def test_a_direct_sink_gets_the_commands_writing_its_file_without_a_pipe(tmp_path: Path) -> None:
    log = TaskLog(tmp_path / "live_backing.log", direct=True)
    procs = TaskProcesses(("TASK_ID", "D1"), log)
    result = await procs.run(
        sh("readlink /proc/self/fd/1; for i in $(seq 200); do printf x; done", tmp_path, "D1")
    )
    assert result.exit_code == 0
    text = (tmp_path / "live_backing.log").read_bytes()
    # stdout is the log file itself, and everything written just before exit is in the log.
    assert text == str(tmp_path / "live_backing.log").encode() + b"\n" + b"x" * 200
    assert log.size == len(text)
    await procs.kill_all()
    log.close()
