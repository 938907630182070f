"""The backing log's gzip copy, made while the log grows: one exact gzip member, whatever happens."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psutil
import pytest

from generic_worker.artifacts import LogGzip
from generic_worker.artifacts.log_gzip import HELPER_FROM
from generic_worker.deflate import BLOCK, STATUS, SpareCpu, follow_log
from generic_worker.engine.tasklog import TaskLog


def one_member(compressed: bytes) -> bytes:
    """The content of `compressed`, asserting it is exactly one complete gzip member."""
    assert compressed[:2] == b"\x1f\x8b"
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    content = decompressor.decompress(compressed)
    assert decompressor.eof and decompressor.unused_data == b""
    return content


@pytest.fixture
async def task_log(tmp_path: Path) -> AsyncIterator[TaskLog]:
    log = TaskLog(tmp_path / "live_backing.log")
    yield log
    log.close()


async def copy_of(gz: LogGzip) -> bytes:
    copy = await gz.finish()
    assert copy is not None
    async with copy:
        return await copy.read_all()


async def until(predicate: Callable[[], bool], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_copy_follows_the_log_and_ends_as_its_exact_gzip(task_log: TaskLog, tmp_path: Path) -> None:
    # Normal priority for the helper, so it makes progress however busy the machine is.
    gz = LogGzip(task_log, idle_priority=False)
    gz.start()
    task_log.info("header line")
    for i in range(12):  # odd sizes: block boundaries fall inside writes (4 MB in all)
        task_log.write(os.urandom(300_001 + i) + b"line %d\n" % i * 5000)
    await until(lambda: gz.progress() >= 3 * BLOCK)
    task_log.write(b"tail that stays for finish()\n")
    task_log.close()
    compressed = await copy_of(gz)
    assert one_member(compressed) == (tmp_path / "live_backing.log").read_bytes()
    assert gz.compressed_early % BLOCK == 0 and gz.compressed_early >= 3 * BLOCK
    again = await copy_of(gz)  # a second caller (a retried upload) gets the same copy
    assert again == compressed
    await gz.aclose()
    assert os.listdir(tmp_path) == ["live_backing.log"]  # the copies were anonymous


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, 2 * BLOCK, 3 * BLOCK + 7])
async def test_sizes_around_block_boundaries(task_log: TaskLog, size: int) -> None:
    gz = LogGzip(task_log, idle_priority=False)
    gz.start()
    data = os.urandom(size // 2) + b"x" * (size - size // 2)
    task_log.write(data)
    await until(lambda: size < HELPER_FROM or gz.progress() == size // BLOCK * BLOCK)
    task_log.close()
    assert one_member(await copy_of(gz)) == data
    assert gz.compressed_early == (0 if size < HELPER_FROM else size // BLOCK * BLOCK)
    await gz.aclose()


async def test_finish_does_not_wait_for_a_starved_helper(task_log: TaskLog) -> None:
    gz = LogGzip(task_log, idle_priority=False)
    gz.start()
    first = b"0123456789abcdef\n" * (3 * BLOCK // 17)
    task_log.write(first)
    await until(lambda: gz.progress() >= 2 * BLOCK)
    pid = gz.helper_pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # as if it never got CPU again
    task_log.write(b"more\n" * BLOCK)
    task_log.close()
    assert one_member(await copy_of(gz)) == first + b"more\n" * BLOCK
    assert 2 * BLOCK <= gz.compressed_early <= 3 * BLOCK
    await gz.aclose()
    assert not psutil.pid_exists(pid)  # killed and reaped


async def test_the_helper_runs_at_idle_priority(task_log: TaskLog) -> None:
    if not hasattr(os, "SCHED_IDLE"):
        pytest.skip("no SCHED_IDLE on this platform")
    gz = LogGzip(task_log)
    gz.start()
    task_log.write(b"x" * HELPER_FROM)
    await until(lambda: gz.helper_pid is not None)
    assert gz.helper_pid is not None
    assert os.sched_getscheduler(gz.helper_pid) == os.SCHED_IDLE
    task_log.close()
    assert one_member(await copy_of(gz)) == b"x" * HELPER_FROM
    await gz.aclose()


async def test_splice_moves_pipe_bytes_into_the_log(task_log: TaskLog, tmp_path: Path) -> None:
    if not hasattr(os, "splice"):
        pytest.skip("no splice(2) on this platform")
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    try:
        task_log.write(b"line first\n")
        os.write(write_fd, b"spliced bytes\n")
        assert task_log.splice_from(read_fd, 1 << 20) == 14
        with pytest.raises(BlockingIOError):  # empty pipe, writer still there
            task_log.splice_from(read_fd, 1 << 20)
        task_log.write(b"line after\n")
        assert task_log.size == 36
        assert await task_log.wait_beyond(35)
        os.close(write_fd)
        write_fd = -1
        assert task_log.splice_from(read_fd, 1 << 20) == 0  # end of file
        task_log.close()
        assert task_log.splice_from(read_fd, 1 << 20) is None  # closed: the pump falls back to write()
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    assert (tmp_path / "live_backing.log").read_bytes() == b"line first\nspliced bytes\nline after\n"


def _follow_one_limit(tmp_path: Path, min_spare: float) -> bytes:
    """Run the helper's loop on a 2-block log with the limit already given and its pipe closed."""
    tmp_path.mkdir()
    log = tmp_path / "log"
    log.write_bytes(b"y" * 2 * BLOCK)
    copy, status = tmp_path / "copy", tmp_path / "status"
    limits_r, limits_w = os.pipe()
    os.write(limits_w, b"%d\n" % (2 * BLOCK))
    os.close(limits_w)
    fds = [os.open(p, os.O_RDWR | os.O_CREAT) for p in (log, copy, status)]
    try:
        follow_log(fds[0], fds[1], fds[2], limits_r, 1, 0.5, min_spare)
    finally:
        for fd in (*fds, limits_r):
            os.close(fd)
    return status.read_bytes()


def test_the_helper_waits_for_a_spare_core(tmp_path: Path) -> None:
    # Without the check it starts at once (one block before it sees the end of its limits);
    # with a spare core required that no machine has, it compresses nothing.
    assert STATUS.unpack(_follow_one_limit(tmp_path / "any", 0.0))[0] == BLOCK
    assert _follow_one_limit(tmp_path / "spare", 1000.0) == b""


def test_spare_cpu_measures_idle_cores() -> None:
    if not Path("/proc/stat").exists():
        pytest.skip("no /proc/stat on this platform")
    gauge = SpareCpu()
    end = time.monotonic() + 0.05
    while time.monotonic() < end:  # let the kernel's 10 ms ticks count something
        pass
    cores = gauge.cores()
    assert cores is not None
    assert 0.0 <= cores <= (os.cpu_count() or 1) + 0.5
