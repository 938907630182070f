"""Readers of the task log are woken at most once per WAKE_INTERVAL while output flows, never missed."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from generic_worker.engine.tasklog import WAKE_INTERVAL, TaskLog


async def test_fast_writes_wake_the_loop_once_per_interval_and_the_last_bytes_are_seen(tmp_path: Path):
    log = TaskLog(tmp_path / "live_backing.log")
    wakes = 0
    real_wake = log._wake

    def counting_wake() -> None:
        nonlocal wakes
        wakes += 1
        real_wake()

    log._wake = counting_wake  # type: ignore[method-assign]
    chunk = b"y" * 4096
    writes = 2000

    def writer() -> None:  # as a pump thread does, as fast as it can
        for _ in range(writes):
            log.write(chunk)

    loop = asyncio.get_running_loop()
    started = loop.time()
    thread = threading.Thread(target=writer)
    thread.start()
    await asyncio.to_thread(thread.join)
    elapsed = loop.time() - started
    # The last write may have come while a wake was pending: the re-check after the interval
    # must still release a reader waiting for it.
    assert await asyncio.wait_for(log.wait_beyond(writes * len(chunk) - 1), 5)
    assert log.size == writes * len(chunk)
    # At most one wake per interval while the writes lasted (plus the first and the last look),
    # however slow a busy machine makes the writer: far fewer than one per write.
    assert 1 <= wakes <= elapsed / WAKE_INTERVAL + 2, (wakes, elapsed)
    assert wakes < writes
    log.close()


async def test_a_write_after_a_quiet_interval_wakes_readers_at_once(tmp_path: Path):
    log = TaskLog(tmp_path / "live_backing.log")
    await asyncio.to_thread(log.write, b"first\n")
    assert await asyncio.wait_for(log.wait_beyond(0), 5)
    # Let the interval's re-check run (it finds nothing new and clears the pending flag).
    await asyncio.wait_for(_until(lambda: not log._wake_pending), 5)
    waiter = asyncio.ensure_future(log.wait_beyond(5))
    await asyncio.to_thread(log.write, b"second\n")
    assert log._wake_pending  # the write scheduled its own wake-up: no wait for a re-check
    assert await asyncio.wait_for(waiter, 5)
    log.close()


async def test_close_releases_waiting_readers(tmp_path: Path):
    log = TaskLog(tmp_path / "live_backing.log")
    waiter = asyncio.ensure_future(log.wait_beyond(100))
    await asyncio.sleep(0)
    log.close()
    assert await asyncio.wait_for(waiter, 5) is False


async def _until(condition: object) -> None:
    assert callable(condition)
    while not condition():
        await asyncio.sleep(WAKE_INTERVAL / 4)
