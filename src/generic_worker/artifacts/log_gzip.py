"""The backing log's gzip copy, made while the task writes the log, on idle CPU only.

Upstream compresses the whole log after the task: a 425 MB log then keeps the run open for
seconds after the last command. Here the copy grows with the log:

- once the log holds `HELPER_FROM` bytes, a helper process (`python -m generic_worker.deflate`)
  at idle CPU priority (`SCHED_IDLE`) compresses each whole 1 MiB block the log reaches: it uses
  only CPU time nobody else wants, and it compresses only while the rest of the machine leaves
  most of a core idle (`deflate.SPARE`, from /proc/stat): a task that keeps the cores busy is not
  slowed (even idle-priority work beside it costs it), and on an idle core the copy keeps pace.
  A process, not a thread: a starved thread holding the GIL would stall the worker's output
  pumps, and with them the task;
- once the log is closed, `finish()` kills the helper (it never waits for it), resumes from the
  helper's last progress record, compresses what is left on the normal all-core pool
  (`compression.deflate_range`), appends the trailer and hands the uploader the finished copy.

The result is one gzip member of exactly the log's bytes (the block scheme of
`generic_worker.deflate`). It lives in an anonymous temporary file next to the log, and memory
stays at a few MiB. The log is only read (by offset): live log readers and the task see no
difference. If the helper cannot run, `finish()` simply has more to do; if the copy cannot be
written (disk full), `finish()` returns None and the uploader compresses the log its own way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from generic_worker.artifacts.compression import anonymous_file, deflate_range
from generic_worker.artifacts.transfer import FileSource
from generic_worker.deflate import (
    BLOCK,
    DEFAULT_LEVEL,
    GZIP_HEADER,
    SPARE,
    STATUS,
    WINDOW,
    GzipMember,
    pwrite_all,
)
from generic_worker.engine.tasklog import TaskLog
from generic_worker.process import IdleHelper

log = logging.getLogger(__name__)

HELPER_FROM = 2 * BLOCK
"""Smaller logs are compressed at the end only (a few ms): most tasks never start a helper."""


class LogGzip:
    """Compresses `log` into a gzip copy as it grows; `finish()` once it is closed.

    Create it (and `start()` it) on the event loop right after the log is opened; call
    `aclose()` when the copy is no longer needed. `idle_priority=False` runs the helper at
    normal priority without the spare-core check (tests, where a busy machine must not starve it).
    """

    def __init__(
        self,
        task_log: TaskLog,
        *,
        level: int = DEFAULT_LEVEL,
        temp_dir: Path | None = None,
        idle_priority: bool = True,
    ) -> None:
        self._log = task_log
        self._level = level
        self._idle = idle_priority
        self._fds: list[int] = []
        try:
            self._read_fd = self._keep(os.open(task_log.path, os.O_RDONLY | os.O_CLOEXEC))
            where = temp_dir or task_log.path.parent
            self._fd = self._keep(anonymous_file(where, "live_backing-"))
            self._status_fd = self._keep(anonymous_file(where, "live_backing-progress-"))
            pwrite_all(self._fd, GZIP_HEADER, 0)
        except OSError:
            self._close_fds()
            raise
        self._helper: IdleHelper | None = None
        self._sent = 0
        self._follower: asyncio.Task[None] | None = None
        self._finished: asyncio.Task[int | None] | None = None
        self.compressed_early = 0
        """Log bytes the helper had compressed when `finish()` took over."""

    def _keep(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    @property
    def helper_pid(self) -> int | None:
        """The helper's process id, once it runs (for tests)."""
        return self._helper.pid if self._helper is not None else None

    def progress(self) -> int:
        """Log bytes the helper has compressed so far (its last progress record)."""
        record = os.pread(self._status_fd, STATUS.size, 0)
        return STATUS.unpack(record)[0] if len(record) == STATUS.size else 0

    def start(self) -> None:
        """Begin following the log (on the event loop)."""
        self._follower = asyncio.create_task(self._follow(), name=f"gzip {self._log.path}")

    async def _follow(self) -> None:
        if not await self._log.wait_beyond(HELPER_FROM - 1) or self._log.closed:
            return
        try:
            # At idle priority it also waits for a spare core (deflate.SPARE); tests run it at
            # normal priority without that check, so a busy machine cannot starve it.
            spare = SPARE if self._idle else 0.0
            args = [str(fd) for fd in (self._read_fd, self._fd, self._status_fd)]
            args += [str(self._level), str(spare)]
            self._helper = IdleHelper.start("generic_worker.deflate", args, self._fds, idle=self._idle)
        except OSError as err:
            log.warning("no early compression of %s: %s", self._log.path, err)
            return
        while not self._log.closed:
            whole = self._log.size // BLOCK * BLOCK
            if whole > self._sent:
                # Limits are absolute: one that does not fit in the pipe is superseded by the next.
                self._helper.send(b"%d\n" % whole)
                self._sent = whole
            if not await self._log.wait_beyond(self._sent + BLOCK - 1):
                return

    async def finish(self) -> FileSource | None:
        """After the log is closed: the finished copy (its own descriptor), or None after an error.

        Safe to call more than once; every caller gets its own descriptor to the same copy.
        """
        if self._finished is None:
            self._finished = asyncio.create_task(self._finish())
        size = await asyncio.shield(self._finished)
        if size is None or self._fd < 0:
            return None
        return FileSource(os.dup(self._fd), size, f"gzip copy of {self._log.path}")

    async def _finish(self) -> int | None:
        await self._stop_helper()
        try:
            return await asyncio.to_thread(self._complete, self._log.size)
        except OSError as err:
            log.warning("compression of %s failed: %s", self._log.path, err)
            return None

    async def _stop_helper(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        if self._helper is not None:
            # Ordering: killed (never waited for: it may be starved of CPU) and reaped before its
            # progress record is read, so the record is final.
            self._helper.kill()
            await self._helper.wait()

    def _complete(self, size: int) -> int:
        """Blocking: resume from the helper's progress, compress the rest; the copy's size."""
        done, crc, written = 0, 0, len(GZIP_HEADER)
        record = os.pread(self._status_fd, STATUS.size, 0)
        if len(record) == STATUS.size:
            done, crc, written = STATUS.unpack(record)
        if done % BLOCK or done > size or written < len(GZIP_HEADER):
            done, crc, written = 0, 0, len(GZIP_HEADER)  # not a record we wrote: start over
        self.compressed_early = done
        previous = os.pread(self._read_fd, WINDOW, done - WINDOW) if done else b""
        member = GzipMember(self._level, crc, done, previous)
        position = written

        def write(data: bytes) -> None:
            nonlocal position
            pwrite_all(self._fd, data, position)
            position += len(data)

        deflate_range(lambda offset, length: self._read(offset, length), done, size, member, write)
        write(member.trailer())
        os.ftruncate(self._fd, position)  # a piece the helper wrote after its last record goes
        return position

    async def aclose(self) -> None:
        """Stop the helper and free the copy (copies handed out by `finish()` stay valid)."""
        if self._finished is not None:
            await asyncio.wait([self._finished])
        else:
            await self._stop_helper()
        self._close_fds()

    def _close_fds(self) -> None:
        fds, self._fds = self._fds, []
        self._fd = self._read_fd = self._status_fd = -1
        for fd in fds:
            os.close(fd)

    def _read(self, offset: int, length: int) -> bytes:
        """Exactly `length` bytes of the log at `offset` (the log never shrinks).

        Through the log's `read_at`, so a truncation line kept only in memory (a full disk) is
        compressed too, as the upload of the plain log would append it.
        """
        data = self._log.read_at(self._read_fd, offset, length)
        if len(data) != length:
            raise OSError(f"the log is shorter than expected at offset {offset}")
        return data
