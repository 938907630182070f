"""The backing log of one task: an append-only file that every log line and all command output go to.

Writers: the event loop (worker lines such as `Executing command ...`) and the process pump
threads (raw command output), serialised by a lock. Readers (the live log, the upload) read the
file itself, so a slow reader can never slow the task or grow memory: the file is the buffer.
`wait_beyond()` lets async readers follow it as it grows; `read_at()` reads it.

Writes go to the page cache with `os.write` on an O_APPEND descriptor; they do not block in
practice, which is why lines are written straight from the event loop. Command output may
instead arrive through `splice_from` (Linux `splice(2)`, pipe to file inside the kernel), on a
second descriptor without O_APPEND (splice refuses those), at the offset the log has reached.

A full disk (the ENOSPC contract; docs/reliability.md):
- nothing that writes to the log ever gets an exception: `write()` and the line methods never
  raise, and once the log is truncated or closed they drop what they are given;
- the log holds `RESERVE` bytes of disk blocks past its end (`preallocate`), topped up as it
  grows and never less than `LINE_ROOM`; when it cannot hold room for the next write plus the
  last line, or a write fails anyway, the log is *truncated*: it keeps what it has, gets exactly
  one final `[taskcluster:error] Task log truncated at N bytes: ...` line (from the held blocks),
  and grows no more. If even that line cannot be written (no reserve on this file system) it is
  kept in memory as `tail`: `size` and `read_at()` include it, so live readers see the same end,
  and the backing log upload appends it to the uploaded copy;
- `on_truncated(message)` is called once, on the event loop, so the run can record the failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path

from generic_worker.engine import preallocate
from generic_worker.timefmt import now, to_tc

RESERVE = 1 << 20
"""Disk blocks held ahead of the log's end; one top-up per MiB of log."""

LINE_ROOM = 4096
"""The least that stays held past the end: room for the truncation line."""

WAKE_INTERVAL = 0.002
"""Readers (live log, compression) are woken at most this often (seconds) while output flows."""

DIRECT_LOOK = (0.005, 0.1)
"""How often (seconds) a log that commands write themselves is looked at: every 5 ms while it
grows, backing off to 100 ms while it does not."""

Move = Callable[[int, int], int]
"""`move(fd, limit)`: put at most `limit` bytes into the log's descriptor, return how many."""


class TaskLog:
    """Append-only, thread-safe task log file with the seed's line prefixes.

    Raises OSError when the file cannot be created, or cannot even hold room for its last
    line (the disk is full already): such a task directory is unusable.
    """

    def __init__(
        self, path: Path, on_truncated: Callable[[str], None] | None = None, *, direct: bool = False
    ) -> None:
        self.path = path
        # O_RDWR (not O_WRONLY): truncation reads the last byte to end the line before its own.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            self._held: int | None = _hold_first(fd)
        except OSError:
            os.close(fd)
            raise
        self._fd: int | None = fd
        self._lock = threading.Lock()
        self._wake_lock = threading.Lock()  # only for _wake_pending: never held for long
        self._size = 0
        self._tail = b""
        self._truncated: str | None = None
        self._dropped = 0
        self._on_truncated = on_truncated
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._changed = asyncio.Event()
        self._wake_pending = False
        self._woken_at = 0  # the size readers were last woken at
        self._splice_fd: int | None = None
        self._splice_broken = not hasattr(os, "splice")
        # Commands writing the file themselves (`open_direct`): see "direct writers" below.
        self._direct_allowed = direct
        self._direct_seen = False  # once true, the file may be longer than `_size`
        self._direct_writers = 0
        self._look_timer: asyncio.TimerHandle | None = None
        self._look_every = DIRECT_LOOK[0]

    @property
    def size(self) -> int:
        """Bytes of log content so far (the file, plus `tail` if the last line is in memory)."""
        return self._size + len(self._tail)

    @property
    def closed(self) -> bool:
        """True once the log is closed; nothing more will be written."""
        return self._fd is None

    @property
    def truncated(self) -> str | None:
        """Why the log stopped growing before it was closed (the truncation line's text), or None."""
        return self._truncated

    @property
    def tail(self) -> bytes:
        """The truncation line when the disk had no room even for it (else empty)."""
        return self._tail

    @property
    def dropped(self) -> int:
        """Bytes discarded because the log was truncated."""
        return self._dropped

    def write(self, data: bytes) -> None:
        """Append raw bytes (command output). Thread-safe; never raises; dropped once closed or truncated."""
        if not data:
            return
        view = memoryview(data)

        def move(fd: int, limit: int) -> int:
            return os.write(fd, view[:limit])

        while view:
            moved = self.write_with(len(view), move)
            if not moved:
                return
            view = view[moved:]

    def write_with(self, length: int, move: Move) -> int:
        """For writers that put bytes into the log's descriptor themselves (e.g. `os.splice`).

        Under the log's lock: makes sure the disk holds room for `length` more bytes (truncating
        the log if it cannot), calls `move(fd, limit)` with `limit` <= `length`, and counts what
        it moved. An OSError from `move` truncates the log; nothing is raised. Returns the bytes
        moved: 0 means the log is closed or truncated and takes nothing more (`length` of them
        are counted as dropped; the caller should go on draining its source and discard).
        """
        message = None
        with self._lock:
            if self._fd is None or self._truncated is not None:
                self._dropped += length
                return 0
            self._catch_up()  # a line goes after what commands wrote themselves
            limit, no_room = self._room(length)
            moved = 0
            if limit > 0:
                try:
                    moved = move(self._fd, limit)
                    self._size += moved
                    self._catch_up()  # a command may have appended meanwhile: the file decides
                except OSError as e:
                    message = self._truncate(e)
            else:
                message = self._truncate(no_room or OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
            if message is not None:
                self._dropped += length - moved
        self._request_wake()
        if message is not None and self._on_truncated is not None:
            callback = self._on_truncated
            self._call_on_loop(lambda: callback(message))
        return moved

    def splice_from(self, pipe_fd: int, limit: int) -> int | None:
        """Move up to `limit` bytes from the non-blocking pipe `pipe_fd` to the end of the log.

        Thread-safe, for the process pumps; follows the ENOSPC contract through `write_with`.
        Returns the count (0 at the pipe's EOF), raises BlockingIOError when the pipe is empty,
        and returns None when the bytes must go through `write` instead: closed or truncated
        (`write` drops and counts them), no splice(2), or a file system that refuses it.
        """
        if self._splice_broken:
            return None
        with self._lock:
            if self._fd is None or self._truncated is not None:
                return None
            if self._splice_fd is None:
                try:
                    self._splice_fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
                except OSError:
                    self._splice_broken = True
                    return None
        outcome: list[BaseException | int] = []

        def move(_fd: int, n: int) -> int:
            # Runs under the lock: `_size` is where an append would go.
            assert self._splice_fd is not None
            try:
                moved = os.splice(pipe_fd, self._splice_fd, n, offset_dst=self._size)
            except BlockingIOError as e:
                outcome.append(e)
                return 0
            except OSError as e:
                if e.errno in preallocate.NO_SPACE:
                    raise  # write_with truncates the log
                self._splice_broken = True  # EINVAL (file system) and the like: write() decides
                outcome.append(e)
                return 0
            outcome.append(moved)
            return moved

        moved = self.write_with(limit, move)
        if not outcome:  # closed or truncated meanwhile: write() drops the rest
            return None if moved == 0 else moved
        first = outcome[0]
        if isinstance(first, BlockingIOError):
            raise first
        if isinstance(first, BaseException):
            return None
        return first

    # -- the disk reserve and truncation (under the lock) ---------------------------------------

    def _room(self, length: int) -> tuple[int, OSError | None]:
        """How many of `length` bytes may go in now, keeping LINE_ROOM held after them.

        With fewer than `length` (possibly 0), also the error that refused more room.
        """
        assert self._fd is not None
        held = self._held
        if held is None:
            return length, None  # no reserve on this file system: write, and see
        end = self._size + length
        if end + LINE_ROOM <= held:
            return length, None
        refused = None
        for want in (end + RESERVE, end + LINE_ROOM):
            try:
                if not preallocate.reserve(self._fd, self._size, want - self._size):
                    self._held = None
                    return length, None
            except OSError as e:
                refused = e
                continue
            self._held = max(held, want)
            return length, None
        # The disk is full: fill what is held, keeping room for the line.
        return max(0, min(length, held - LINE_ROOM - self._size)), refused

    def _truncate(self, error: OSError) -> str:
        """Stop the log with its one final line (written, or kept as `tail`); return the line's text."""
        assert self._fd is not None
        if error.errno in preallocate.NO_SPACE:
            why = f"the disk of the task directory is full ({error.strerror})"
        else:
            why = f"writing it failed ({error.strerror or error})"
        message = f"Task log truncated at {self._size} bytes: {why}; the task's further output was discarded"
        self._truncated = message
        line = f"[taskcluster:error] {message}\n".encode()
        if self._size and not self._ends_with_newline():
            line = b"\n" + line
        try:
            written = self._write_at_end(line)
        except OSError:
            written = 0
        self._size += written
        self._tail = line[written:]
        return message

    def _write_at_end(self, line: bytes) -> int:
        """Write the truncation line right at `_size` (under the lock); how much went in.

        With direct writers the file may already be longer (a command appended after the size
        was taken): the line then overwrites that, through a descriptor without O_APPEND, and
        `close()` cuts the file at the end of the log.
        """
        assert self._fd is not None
        if not self._direct_seen:
            return os.write(self._fd, line)
        fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            return os.pwrite(fd, line, self._size)
        finally:
            os.close(fd)

    def _ends_with_newline(self) -> bool:
        assert self._fd is not None
        try:
            return os.pread(self._fd, 1, self._size - 1) == b"\n"
        except OSError:
            return False

    # -- direct writers ------------------------------------------------------------------------
    #
    # A command may write its output into the log file itself (`open_direct`: its stdout and
    # stderr are an O_APPEND descriptor of the file) instead of through a pipe and a pump: that
    # costs the task nothing (no pipe, no copy, no thread competing for its cores). The log then
    # follows the file: `refresh()` (on the loop, every DIRECT_LOOK while such commands live,
    # and on `flush`) takes the file's size as the log's, tops up the disk reserve and wakes the
    # readers. On a full disk the log is truncated at the size it had then: the truncation line
    # goes right there, anything a command appends after it is never read and is cut at close,
    # and the command's own writes fail with ENOSPC (a full disk costs the task, not the log).
    # Only for engines where the task could rewrite the file anyway (the insecure engine: the
    # task runs as the worker's user); elsewhere `open_direct` answers None and a pipe is used.

    def open_direct(self) -> int | None:
        """On the loop: a new appending descriptor of the log for one command's output, or None.

        None when this log takes no direct writers, or is closed or truncated: use a pipe then.
        Pair every descriptor handed out with one `direct_done()` once its command is over.
        """
        if not self._direct_allowed:
            return None
        with self._lock:
            if self._fd is None or self._truncated is not None:
                return None
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            except OSError:
                return None
            self._catch_up()
            self._direct_seen = True
            self._direct_writers += 1
        self._look_every = DIRECT_LOOK[0]
        self._schedule_look()
        return fd

    def direct_done(self) -> None:
        """On the loop: one command that wrote directly is over (its processes are gone)."""
        self.refresh()
        self._direct_writers = max(0, self._direct_writers - 1)

    def refresh(self) -> bool:
        """On the loop: take in what commands appended to the file; whether the log grew."""
        message = None
        with self._lock:
            if self._fd is None or self._truncated is not None or not self._direct_seen:
                return False
            before = self._size
            try:
                self._catch_up()
                _, no_room = self._room(0)
            except OSError as e:
                no_room = e
            if no_room is not None:  # the disk is full: the log ends at what it has now
                message = self._truncate(no_room)
            grew = self._size > before
        if grew or message is not None:
            self._request_wake()
        if message is not None and self._on_truncated is not None:
            self._on_truncated(message)
        return grew

    def _catch_up(self) -> None:
        """Under the lock: the log is as long as the file commands write themselves."""
        if self._direct_seen and self._fd is not None:
            self._size = max(self._size, os.fstat(self._fd).st_size)

    def _schedule_look(self) -> None:
        if self._look_timer is None and self._fd is not None:
            self._look_timer = self._loop.call_later(self._look_every, self._look)

    def _look(self) -> None:
        self._look_timer = None
        if self._direct_writers <= 0:
            return
        grew = self.refresh()
        self._look_every = DIRECT_LOOK[0] if grew else min(2 * self._look_every, DIRECT_LOOK[1])
        self._schedule_look()

    # -- waking readers ------------------------------------------------------------------------

    def _call_on_loop(self, callback: Callable[[], None]) -> None:
        if threading.get_ident() == self._thread:
            callback()
        else:
            try:
                self._loop.call_soon_threadsafe(callback)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def _request_wake(self) -> None:
        """From any thread, after the log changed: wake the readers, unless a wake is pending."""
        with self._wake_lock:
            wake = not self._wake_pending
            self._wake_pending = True
        if wake:
            self._call_on_loop(self._wake)

    def _wake(self) -> None:
        """On the loop: release the readers waiting now; look again after WAKE_INTERVAL.

        `_wake_pending` stays set until then, so writes meanwhile schedule no wake-up of their
        own: a task printing fast wakes the loop (and its readers) at most once per interval,
        not once per pump chunk, and the loop takes less of the cores the task needs.
        """
        event, self._changed = self._changed, asyncio.Event()
        event.set()
        self._woken_at = self.size
        if self._fd is None:
            return  # closed: nothing more will come
        try:
            self._loop.call_later(WAKE_INTERVAL, self._rearm)
        except RuntimeError:  # the loop is closing
            pass

    def _rearm(self) -> None:
        # Ordering: a writer updates `_size` before it looks at `_wake_pending` (under
        # `_wake_lock`), and the size is read here under that lock: either this sees its bytes
        # and wakes, or the writer sees the flag cleared and schedules a wake itself.
        with self._wake_lock:
            grew = self.size != self._woken_at or self._fd is None
            self._wake_pending = grew
        if grew:
            self._wake()

    # -- lines ----------------------------------------------------------------------------------

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

    # -- readers --------------------------------------------------------------------------------

    async def wait_beyond(self, offset: int) -> bool:
        """Wait until the log is longer than `offset` (True) or closed with no more data (False)."""
        while True:
            event = self._changed
            if self.size > offset:
                return True
            if self._fd is None:
                return False
            await event.wait()

    def read_at(self, fd: int, offset: int, length: int) -> bytes:
        """Blocking: up to `length` bytes of the log at `offset` (empty at its end).

        Read from `fd` (the reader's own descriptor of `path`), then from `tail`. Readers use
        this, not `pread`, so they see the truncation line even when it is only in memory.
        """
        file_end = self._size
        if offset < file_end:
            return os.pread(fd, min(length, file_end - offset), offset)
        start = offset - file_end
        return self._tail[start : start + length]

    def close(self) -> None:
        """Close the file (giving back the held blocks); later writes are dropped, readers released."""
        with self._lock:
            if self._truncated is None:
                self._catch_up()  # the last of what commands wrote themselves
            if self._direct_seen and self._fd is not None:
                # Whatever a command appended after the log's end (after a truncation) goes.
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._size)
            if self._look_timer is not None:
                self._look_timer.cancel()
                self._look_timer = None
            fd, self._fd = self._fd, None
            held, self._held = self._held, None
            splice_fd, self._splice_fd = self._splice_fd, None
        if splice_fd is not None:
            os.close(splice_fd)
        if fd is not None:
            if held is not None and held > self._size:
                preallocate.release(fd, self._size, held - self._size)
            os.close(fd)
            self._call_on_loop(self._wake)


def _hold_first(fd: int) -> int | None:
    """Hold the first RESERVE (at least LINE_ROOM) bytes; None without reserves on this system."""
    try:
        return RESERVE if preallocate.reserve(fd, 0, RESERVE) else None
    except OSError as e:
        if e.errno not in preallocate.NO_SPACE:
            raise
    return LINE_ROOM if preallocate.reserve(fd, 0, LINE_ROOM) else None
