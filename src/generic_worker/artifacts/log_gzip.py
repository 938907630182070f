"""The backing log's gzip copy, made while the task writes the log, on idle CPU only.

Upstream compresses the whole log after the task: a 425 MB log then keeps the run open for
seconds after the last command. Here the copy grows with the log:

- while the log is open, every whole 1 MiB block it holds is compressed by one thread at idle
  priority (`SCHED_IDLE`): it uses only CPU time nobody else wants, so a task that keeps every
  core busy is not slowed, and on an idle core the copy keeps pace with the log;
- once the log is closed, `finish()` compresses what is left (at most what the idle thread had
  no time for) on the normal all-core pool (`compression.deflate_range`), appends the trailer
  and hands the uploader the finished copy.

The result is one gzip member of exactly the log's bytes (the block scheme of `compression.py`).
It lives in an anonymous temporary file next to the log, and memory stays at a few MiB. The
log is only read (by offset), never waited for by a writer: live log readers and the task see
no difference. Any error (disk full...) just ends the early copy: `finish()` then returns None
and the uploader compresses the log the ordinary way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

from generic_worker.artifacts.compression import (
    BLOCK,
    DEFAULT_LEVEL,
    GZIP_HEADER,
    GzipMember,
    anonymous_file,
    deflate_range,
    write_all,
)
from generic_worker.artifacts.transfer import FileSource
from generic_worker.engine.tasklog import TaskLog
from generic_worker.process import make_current_thread_idle

log = logging.getLogger(__name__)

_idle_lock = threading.Lock()
_idle_pool: ThreadPoolExecutor | None = None


def idle_pool() -> ThreadPoolExecutor:
    """The worker's idle-priority compression thread (one: it only uses CPU that is left over)."""
    global _idle_pool
    with _idle_lock:
        if _idle_pool is None:
            _idle_pool = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="log-gzip-idle", initializer=make_current_thread_idle
            )
        return _idle_pool


class LogGzip:
    """Compresses `log` into a gzip copy as it grows; `finish()` once it is closed.

    Create it (and `start()` it) on the event loop right after the log is opened; call
    `aclose()` when the copy is no longer needed. `executor` runs the early compression
    (default: the worker's idle-priority thread).
    """

    def __init__(
        self,
        task_log: TaskLog,
        *,
        level: int = DEFAULT_LEVEL,
        temp_dir: Path | None = None,
        executor: Executor | None = None,
    ) -> None:
        self._log = task_log
        self._executor = executor
        self._member = GzipMember(level)
        self._lock = threading.Lock()  # guards _done, _member, _abandoned and the copy's writes
        self._done = 0  # log bytes compressed into the copy so far (a multiple of BLOCK)
        self._abandoned = False  # finish() took over: the idle thread must write nothing more
        self._written = 0
        self.error: OSError | None = None
        self._read_fd = os.open(task_log.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._fd = anonymous_file(temp_dir or task_log.path.parent, "live_backing-")
            write_all(self._fd, GZIP_HEADER)
        except OSError:
            os.close(self._read_fd)
            raise
        self._written = len(GZIP_HEADER)
        self._follower: asyncio.Task[None] | None = None
        self._finished: asyncio.Task[FileSource | None] | None = None

    @property
    def compressed_early(self) -> int:
        """How many log bytes were compressed while the log was open (for tests and logs)."""
        return self._done

    def start(self) -> None:
        """Begin following the log (on the event loop)."""
        self._follower = asyncio.create_task(self._follow(), name=f"gzip {self._log.path}")

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        pool = self._executor or idle_pool()
        while self.error is None and not self._log.closed:
            whole = self._log.size // BLOCK * BLOCK
            if whole > self._done:
                # One block per hop, so finish() never waits for more than the block in flight.
                if not await loop.run_in_executor(pool, self._compress_next):
                    return
            elif not await self._log.wait_beyond(self._done + BLOCK - 1):
                return

    def _compress_next(self) -> bool:
        """In the idle thread: compress the (whole) block at `_done`; False to stop following."""
        with self._lock:
            if self._abandoned:
                return False
            offset = self._done
        try:
            data = _read(self._read_fd, offset, BLOCK)
            with self._lock:
                if self._abandoned:
                    return False
                job = self._member.take(data, False)
            # The deflate runs outside the lock; only this thread takes blocks until abandoned.
            piece = job()
            with self._lock:
                if self._abandoned:
                    return False
                write_all(self._fd, piece)
                self._written += len(piece)
                self._done = offset + BLOCK
        except OSError as err:
            self.error = err
            log.warning("early compression of %s stopped: %s", self._log.path, err)
            return False
        return True

    async def finish(self) -> FileSource | None:
        """After the log is closed: the finished copy (its own descriptor), or None after an error.

        Safe to call more than once; every caller gets its own descriptor to the same copy.
        """
        if self._finished is None:
            self._finished = asyncio.create_task(self._finish())
        done = await asyncio.shield(self._finished)
        if done is None or self._fd < 0:
            return None
        return FileSource(os.dup(self._fd), done.size, done.description)

    async def _finish(self) -> FileSource | None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        with self._lock:
            # Ordering: from here the idle thread writes nothing; a block it is still deflating
            # (perhaps starved of CPU) is simply done again below, at normal priority.
            self._abandoned = True
            start = self._done
        if self.error is not None:
            return None
        try:
            await asyncio.to_thread(self._rest, start, self._log.size)
        except OSError as err:
            self.error = err
            log.warning("compression of %s failed: %s", self._log.path, err)
            return None
        return FileSource(-1, self._written, f"gzip copy of {self._log.path}")

    def _rest(self, start: int, end: int) -> None:
        def write(data: bytes) -> None:
            write_all(self._fd, data)
            self._written += len(data)

        deflate_range(
            lambda offset, length: _read(self._read_fd, offset, length), start, end, self._member, write
        )
        write(self._member.trailer())

    async def aclose(self) -> None:
        """Stop following and free the copy (copies handed out by `finish()` stay valid)."""
        if self._follower is not None:
            self._follower.cancel()
        with self._lock:
            self._abandoned = True
        if self._finished is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([self._finished])
        fds = [fd for fd in (self._fd, self._read_fd) if fd >= 0]
        self._fd = self._read_fd = -1
        for fd in fds:
            os.close(fd)


def _read(fd: int, offset: int, length: int) -> bytes:
    """Exactly `length` bytes of the log at `offset` (the log never shrinks)."""
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise OSError(f"the log is shorter than expected at offset {offset}")
    return data
