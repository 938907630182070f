"""The backing log of one task: an append-only file that every log line and all command output go to.

Writers: the event loop (worker lines such as `Executing command ...`) and the process pump
threads (raw command output), serialised by a lock. Readers (the live log, chain of trust,
the upload) read the file itself, so a slow reader can never slow the task or grow memory:
the file is the buffer. `wait_beyond()` lets async readers follow it as it grows.

Writes go to the page cache with `os.write` on an O_APPEND descriptor; they do not block in
practice, which is why lines are written straight from the event loop. Command output may
instead arrive through `splice_from` (Linux `splice(2)`, pipe to file inside the kernel), on a
second descriptor without O_APPEND (splice refuses those), at the offset the log has reached.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from generic_worker.timefmt import now, to_tc


class TaskLog:
    """Append-only, thread-safe task log file with the seed's line prefixes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self._lock = threading.Lock()
        self._size = 0
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._changed = asyncio.Event()
        self._wake_pending = False
        self._splice_fd: int | None = None
        self._splice_broken = not hasattr(os, "splice")

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    @property
    def closed(self) -> bool:
        """True once the log is closed; nothing more will be written."""
        return self._fd is None

    def write(self, data: bytes) -> None:
        """Append raw bytes (command output). Thread-safe; silently dropped once closed."""
        if not data:
            return
        with self._lock:
            if self._fd is None:
                return
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self._size += len(data)
            wake = not self._wake_pending
            self._wake_pending = True
        if wake:
            self._notify()

    def splice_from(self, pipe_fd: int, limit: int) -> int | None:
        """Move up to `limit` bytes from the non-blocking pipe `pipe_fd` to the end of the log.

        Thread-safe, for the process pumps. Returns the count (0 at the pipe's EOF), raises
        BlockingIOError when the pipe is empty, and returns None when the bytes must go through
        `write` instead: closed, no splice(2), or any error (which `write` then handles).
        """
        if self._splice_broken:
            return None
        with self._lock:
            if self._fd is None:
                return None
            try:
                if self._splice_fd is None:
                    self._splice_fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
                # Offset given explicitly: serialised by the lock, it is where an append would go.
                moved = os.splice(pipe_fd, self._splice_fd, limit, offset_dst=self._size)
            except BlockingIOError:
                raise
            except OSError:
                self._splice_broken = True  # ENOSPC, EINVAL (filesystem)...: write() decides
                return None
            self._size += moved
            wake = moved > 0 and not self._wake_pending
            self._wake_pending = self._wake_pending or moved > 0
        if wake:
            self._notify()
        return moved

    def _notify(self) -> None:
        if threading.get_ident() == self._thread:
            self._wake()
        else:
            try:
                self._loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def _wake(self) -> None:
        with self._lock:
            self._wake_pending = False
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def _lines(self, prefix: str, message: str) -> None:
        text = "".join(f"{prefix}{line}\n" for line in message.split("\n"))
        self.write(text.encode("utf-8", errors="replace"))

    def info(self, message: str) -> None:
        """`[taskcluster <ts>] message`, one prefix per line."""
        self._lines(f"[taskcluster {to_tc(now())}] ", message)

    def warn(self, message: str) -> None:
        """`[taskcluster:warn <ts>] message`, one prefix per line."""
        self._lines(f"[taskcluster:warn {to_tc(now())}] ", message)

    def error(self, message: str) -> None:
        """`[taskcluster:error] message` (no timestamp, as the seed), one prefix per line."""
        self._lines("[taskcluster:error] ", message)

    async def wait_beyond(self, offset: int) -> bool:
        """Wait until the log is longer than `offset` (True) or closed with no more data (False)."""
        while True:
            event = self._changed
            if self._size > offset:
                return True
            if self._fd is None:
                return False
            await event.wait()

    def close(self) -> None:
        """Close the file; later writes are dropped and waiting readers are released."""
        with self._lock:
            fd, self._fd = self._fd, None
            splice_fd, self._splice_fd = self._splice_fd, None
        if splice_fd is not None:
            os.close(splice_fd)
        if fd is not None:
            os.close(fd)
            self._notify()
