"""The task log's ENOSPC contract (engine/tasklog.py): it never raises, keeps what it has, ends with one line."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import pytest

from generic_worker.artifacts.transfer import FileSource
from generic_worker.engine.tasklog import RESERVE, TaskLog

from ..small_disk import free_bytes, tmpfs

MIB = 1024 * 1024
LINE = "[taskcluster:error] Task log truncated at "


async def test_a_full_disk_truncates_the_log_once_and_nothing_raises(tmp_path: Path):
    with tmpfs(tmp_path / "disk", "2m") as disk:
        empty = free_bytes(disk)
        truncations: list[str] = []
        log = TaskLog(disk / "live_backing.log", on_truncated=truncations.append)
        chunk = b"x" * 100_000 + b"\n"
        for _ in range(30):  # 3 MB into 2 MiB, from a thread as the pumps do
            await asyncio.to_thread(log.write, chunk)
        log.info("a line after the disk filled")
        await asyncio.sleep(0)  # the callback runs on the loop
        log.close()
        text = (disk / "live_backing.log").read_bytes()
        assert log.size == len(text) and log.tail == b""
        kept, last = text.rstrip(b"\n").rsplit(b"\n", 1)
        assert last.startswith(LINE.encode()) and text.count(LINE.encode()) == 1
        at = int(last[len(LINE) :].split(b" ", 1)[0])
        assert at in (len(kept), len(kept) + 1)  # +1: the data ended with its own newline
        assert b"the disk of the task directory is full (No space left on device)" in last
        assert kept.startswith(chunk) and set(kept) == {ord("x"), ord("\n")}  # the first output is kept
        assert log.dropped > 0 and log.truncated is not None
        assert truncations == [log.truncated]
        # The held reserve is given back at close: only the file's own pages stay used.
        assert empty - free_bytes(disk) <= len(text) + 64 * 1024


async def test_a_log_that_cannot_hold_its_last_line_cannot_be_opened(tmp_path: Path):
    with tmpfs(tmp_path / "disk", "1m") as disk:
        (disk / "filler").write_bytes(b"\0" * free_bytes(disk))
        with pytest.raises(OSError) as raised:
            TaskLog(disk / "live_backing.log")
        assert raised.value.errno == errno.ENOSPC


async def test_the_line_is_kept_in_memory_when_not_even_it_can_be_written(tmp_path: Path):
    # /dev/full: no reserve possible (not a file), and every write fails with ENOSPC.
    truncations: list[str] = []
    log = TaskLog(Path("/dev/full"), on_truncated=truncations.append)
    log.write(b"output\n")
    log.error("and a line")
    assert log.truncated is not None and truncations == [log.truncated]
    assert log.tail == f"[taskcluster:error] {log.truncated}\n".encode()
    assert log.size == len(log.tail)
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        assert log.read_at(fd, 0, 10) + log.read_at(fd, 10, 1000) == log.tail  # readers see it
    finally:
        os.close(fd)
    assert await log.wait_beyond(0)
    log.close()


async def test_a_direct_writer_that_fails_truncates_the_log(tmp_path: Path):
    log = TaskLog(tmp_path / "live_backing.log")
    log.write(b"partial line")

    def failing(fd: int, limit: int) -> int:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    assert log.write_with(100, failing) == 0
    assert log.write_with(5, lambda fd, limit: os.write(fd, b"late!"[:limit])) == 0  # takes nothing more
    log.close()
    text = (tmp_path / "live_backing.log").read_text()
    assert text == (
        "partial line\n[taskcluster:error] Task log truncated at 12 bytes: writing it failed "
        "(Input/output error); the task's further output was discarded\n"
    )
    assert log.dropped == 105


async def test_direct_writers_get_room_for_what_they_move(tmp_path: Path):
    log = TaskLog(tmp_path / "live_backing.log")
    limits: list[int] = []

    def move(fd: int, limit: int) -> int:
        limits.append(limit)
        return os.write(fd, b"y" * min(limit, 3 * RESERVE))

    assert log.write_with(3 * RESERVE, move) == 3 * RESERVE
    assert limits == [3 * RESERVE] and log.size == 3 * RESERVE and log.truncated is None
    log.close()


async def test_an_upload_source_reads_the_trailer_after_the_file(tmp_path: Path):
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    async with await FileSource.open(path, b"ABC") as source:
        assert source.size == 13
        assert source.read_at(0, 13) == b"0123456789ABC"
        assert source.read_at(8, 4) == b"89AB"
        assert source.read_at(11, 2) == b"BC"
        assert b"".join([chunk async for chunk in source.chunks()]) == b"0123456789ABC"


async def test_an_upload_source_reads_one_chunk_ahead_and_stops_cleanly(tmp_path: Path):
    from generic_worker.artifacts.transfer import CHUNK, Digests

    path = tmp_path / "f"
    content = os.urandom(3 * CHUNK + 5)
    path.write_bytes(content)
    async with await FileSource.open(path) as source:
        digests = Digests()
        assert b"".join([chunk async for chunk in source.chunks(digests)]) == content
        assert digests.length == len(content)  # every chunk hashed once, in order
        chunks = source.chunks()
        assert await anext(chunks) == content[:CHUNK]
        await chunks.aclose()  # type: ignore[attr-defined]  # the read already under way for chunk 2 ends before this returns
    assert source.fd < 0
