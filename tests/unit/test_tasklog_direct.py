"""Commands that write the task log themselves (TaskLog(direct=True), the insecure engine)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from generic_worker.engine.tasklog import TaskLog

from ..small_disk import tmpfs

LINE = b"[taskcluster:error] Task log truncated at "


async def test_what_a_command_writes_itself_reaches_readers_without_a_refresh_call(tmp_path: Path):
    log = TaskLog(tmp_path / "live_backing.log", direct=True)
    fd = log.open_direct()
    assert fd is not None
    data = b"written by the command itself\n" * 1000
    await asyncio.to_thread(os.write, fd, data)
    # The log looks at the file every few ms while a direct writer lives: no pump, no call.
    assert await asyncio.wait_for(log.wait_beyond(len(data) - 1), 5)
    reader = os.open(log.path, os.O_RDONLY)  # a reader's own descriptor, as the live log's
    try:
        assert log.read_at(reader, 0, len(data)) == data
    finally:
        os.close(reader)
    os.close(fd)
    log.direct_done()
    log.close()


async def test_worker_lines_go_after_what_commands_wrote(tmp_path: Path):
    log = TaskLog(tmp_path / "live_backing.log", direct=True)
    fd = log.open_direct()
    assert fd is not None
    os.write(fd, b"command output\n")
    log.info("Exit Code: 0")  # no refresh in between: the line still goes after the output
    os.write(fd, b"a background process\n")
    log.direct_done()
    os.close(fd)
    log.close()
    text = (tmp_path / "live_backing.log").read_bytes()
    assert text.startswith(b"command output\n[taskcluster ")
    assert text.endswith(b"] Exit Code: 0\na background process\n")
    assert log.size == len(text)


async def test_a_log_that_takes_no_direct_writers_says_so(tmp_path: Path):
    log = TaskLog(tmp_path / "live_backing.log")
    assert log.open_direct() is None
    log.close()
    closed = TaskLog(tmp_path / "other.log", direct=True)
    closed.close()
    assert closed.open_direct() is None


async def test_a_full_disk_truncates_the_log_once_and_costs_only_the_command(tmp_path: Path):
    with tmpfs(tmp_path / "disk", "2m") as disk:
        truncations: list[str] = []
        log = TaskLog(disk / "live_backing.log", on_truncated=truncations.append, direct=True)
        fd = log.open_direct()
        assert fd is not None
        chunk = b"y" * 65535 + b"\n"

        def command() -> OSError | None:  # writes until the disk refuses, as `base64` would
            for _ in range(100):
                try:
                    os.write(fd, chunk)
                except OSError as err:
                    return err
            return None

        refused = await asyncio.to_thread(command)
        assert refused is not None  # the command itself saw the full disk
        log.refresh()
        log.info("a line after the disk filled")  # dropped: the log is truncated
        log.direct_done()
        os.close(fd)
        log.close()
        text = (disk / "live_backing.log").read_bytes() + log.tail
        assert len(truncations) == 1 and text.count(LINE) == 1
        kept, last = text.rstrip(b"\n").rsplit(b"\n", 1)
        assert last.startswith(LINE) and b"the disk of the task directory is full" in last
        assert kept.startswith(chunk) and set(kept) == {ord("y"), ord("\n")}
        assert log.size == len(text) and log.truncated is not None


async def test_what_a_command_appends_after_the_truncation_is_never_read_and_cut_at_close(tmp_path: Path):
    with tmpfs(tmp_path / "disk", "2m") as disk:
        filler = disk / "filler"
        filler.write_bytes(b"f" * (1 << 20))  # room to give back once the log is truncated
        log = TaskLog(disk / "live_backing.log", direct=True)
        fd = log.open_direct()
        assert fd is not None

        def fill() -> None:
            while True:
                try:
                    os.write(fd, b"y" * 4095 + b"\n")
                except OSError:
                    return

        await asyncio.to_thread(fill)
        log.refresh()
        assert log.truncated is not None
        end = log.size
        filler.unlink()
        os.write(fd, b"z" * 100_000)  # the disk has room again: this lands past the log's end
        log.refresh()
        assert log.size == end  # never read
        log.direct_done()
        os.close(fd)
        log.close()
        text = (disk / "live_backing.log").read_bytes() + log.tail
        assert len(text) == end and b"z" not in text  # cut at close
        assert text.rstrip(b"\n").rsplit(b"\n", 1)[1].startswith(LINE)
