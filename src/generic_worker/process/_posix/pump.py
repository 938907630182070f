"""The pump: a thread that moves a command's output from its pipe into the task's `OutputSink`.

A thread doing `os.read(fd, 1 MiB)` on a 1 MiB pipe runs at the speed of the child writing the file
itself (deps.md §5.1), and it keeps the sink's (blocking) file writes off the event loop. When the
sink is a `SplicingSink` (the task log) and the OS has `splice(2)`, the thread moves the bytes
from the pipe into the file inside the kernel instead: no copy through Python, about half the
CPU per byte, so the pump costs a task that saturates the machine nothing measurable.

The hard part is knowing when everything a command wrote has arrived, without waiting for EOF:
a background grandchild can hold the pipe open forever. `flush()` asks the pump thread; at the
top of its loop (no data in flight) the thread takes FIONREAD, the bytes still in the pipe, and
answers once it has passed at least that many more bytes to the sink (or hit EOF). Called after the
command exited, that covers everything the command wrote, whoever else still holds the pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import select
import struct
import termios
import threading
import time
from dataclasses import dataclass

from ..model import OutputSink, SplicingSink

_log = logging.getLogger(__name__)

# 1 MiB, the default /proc/sys/fs/pipe-max-size: with the 64 KiB default pipe the pump costs 2-3x
# the CPU (deps.md §5.1). One read takes what a full pipe holds.
PIPE_SIZE = CHUNK = 1 << 20

BATCH = 256 << 10
BATCH_WAIT_MS = 2
FAST_GAP = 0.001
"""When output comes again within FAST_GAP of emptying the pipe, and less than BATCH is there,
the pump waits up to BATCH_WAIT_MS for more before moving it: a task writing fast is woken far
less often (see `_main`), and slow output (lines, progress) is passed on at once as before."""

MIN_WAIT = 0.0002
"""The shortest batching wait (seconds)."""


@dataclass
class _Waiter:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]
    remaining: int | None = None  # bytes still to pass on; None until the thread took FIONREAD


def _resolve(waiter: _Waiter) -> None:
    def done() -> None:
        if not waiter.future.done():
            waiter.future.set_result(None)

    with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting any more
        waiter.loop.call_soon_threadsafe(done)


def _pipe_size(fd: int) -> int:
    get_size = getattr(fcntl, "F_GETPIPE_SZ", None)
    if get_size is None:
        return CHUNK
    try:
        return int(fcntl.fcntl(fd, get_size))
    except OSError:
        return CHUNK


def make_output_pipe() -> tuple[int, int]:
    """Create a command's (read, write) output pipe, raised to `PIPE_SIZE` where the OS allows.

    Both ends are close-on-exec (Python's default), so a concurrently started command never
    inherits another command's write end, which would keep that pipe from reaching EOF.
    """
    read_fd, write_fd = os.pipe()
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only; macOS pipes grow by themselves
    if set_size is not None:
        try:
            fcntl.fcntl(write_fd, set_size, PIPE_SIZE)
        except OSError as err:
            # EPERM: above pipe-max-size, or the user's pipe-user-pages-soft budget is used up.
            _log.debug("could not raise the pipe to %d bytes: %s", PIPE_SIZE, err)
    return read_fd, write_fd


def _fionread(fd: int) -> int:
    """How many bytes are waiting in the pipe."""
    raw = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    return int(struct.unpack("i", raw)[0])


class Pump:
    """Copies everything from a command's output pipe into `output`, in a thread.

    Creating a pump creates the pipe: hand `write_fd` to the command, then `close_write_end()`
    (our copy would keep the pipe from ever reaching EOF), then `start()`; or `discard()` if
    the command did not start. The pump closes the read end when it finishes: at EOF (every
    writer is gone), or after `stop()`. It never blocks the loop: `flush()` is awaited there.
    """

    def __init__(self, output: OutputSink) -> None:
        self._fd, self.write_fd = make_output_pipe()
        try:
            self._wake_r, self._wake_w = os.pipe()
        except OSError:
            os.close(self._fd)
            os.close(self.write_fd)
            raise
        self._output = output
        self._splice = (
            output.splice_from if hasattr(os, "splice") and isinstance(output, SplicingSink) else None
        )
        # Only our read end: the writers' end is a separate open file description.
        os.set_blocking(self._fd, False)
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._lock = threading.Lock()
        self._waiters: list[_Waiter] = []
        self._stopping = False
        self._finished = False
        self.error: OSError | None = None  # the first error the sink raised, if any
        self.bytes = 0  # how much was passed to the sink
        # How long to let a fast writer fill the pipe: adapted to its rate (see `_batch`).
        self._wait = BATCH_WAIT_MS / 1000
        self._target = min(_pipe_size(self._fd), CHUNK) // 2
        self._thread: threading.Thread | None = None

    def close_write_end(self) -> None:
        """Close our copy of the write end (once the command has its own, or failed to start)."""
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def discard(self) -> None:
        """Close everything of a pump that was never started (its command did not start)."""
        self.close_write_end()
        with self._lock:
            self._finished = True
            for fd in (self._fd, self._wake_r, self._wake_w):
                os.close(fd)

    def start(self, name: str) -> None:
        """Start the pump thread, called `name`."""
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    async def flush(self) -> None:
        """Return once everything in the pipe now has reached the sink (or the pipe hit EOF)."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop, loop.create_future())
        with self._lock:
            if self._finished:
                return
            self._waiters.append(waiter)
        self._wake()
        await waiter.future

    def stop(self) -> None:
        """Ask the thread to pass on what is in the pipe now, close it and end (returns at once)."""
        with self._lock:
            self._stopping = True
        self._wake()

    async def join(self) -> None:
        """Wait until the thread has ended (after EOF or `stop()`)."""
        if self._thread is not None and self._thread.is_alive():
            await asyncio.to_thread(self._thread.join)

    def _wake(self) -> None:
        # Under the lock: once finished, the fd number may already belong to someone else.
        with self._lock, contextlib.suppress(BlockingIOError):  # full: it is awake anyway
            if not self._finished:
                os.write(self._wake_w, b"x")

    def _main(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        waker = select.poll()
        waker.register(self._wake_r, select.POLLIN)
        try:
            # Loop top: nothing read is still unsent, so FIONREAD now bounds what flush() needs.
            while not self._serve_waiters():
                try:
                    moved = self._move()
                except BlockingIOError:
                    # Poll only when the pipe is empty: under load the reads never block, and
                    # skipping the poll saves a syscall per chunk (~10 % of the pump's time).
                    emptied = time.monotonic()
                    poller.poll()
                    if time.monotonic() - emptied < FAST_GAP and _fionread(self._fd) < BATCH:
                        # A fast writer (data again within FAST_GAP): let it fill the pipe a
                        # little. Linux wakes a reader only when a write finds the pipe empty,
                        # so each drain-to-empty costs the writer a wake-up per write (4 KiB
                        # for base64). A flush or stop request (the wake pipe) ends the wait.
                        self._batch(waker, emptied)
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    continue
                if not moved:
                    return  # EOF: every writer has exited
            self._drain(_fionread(self._fd))
        finally:
            self._finish()

    def _batch(self, waker: select.poll, emptied: float) -> None:
        """Wait for a fast writer to fill about half the pipe, then adapt the next wait.

        A fixed wait is wrong both ways: too short and the writer is woken for every write,
        too long and it fills the pipe and blocks, and with it the whole pipeline behind it
        (`head | base64`: both cores then sit idle until the pump looks again). So the wait is
        what half a pipe took at the writer's last rate, within [MIN_WAIT, BATCH_WAIT_MS].
        """
        waker.poll(self._wait * 1000)
        filled = _fionread(self._fd)
        elapsed = time.monotonic() - emptied
        if filled <= 0 or elapsed <= 0:
            return
        wait = self._target * elapsed / filled  # at the measured rate, half a pipe takes this
        self._wait = min(max(wait, MIN_WAIT), BATCH_WAIT_MS / 1000)

    def _serve_waiters(self) -> bool:
        """Answer the flush requests that are satisfied; return whether stop() was requested."""
        ready: list[_Waiter] = []
        with self._lock:
            pending = [w for w in self._waiters if w.remaining is None]
            if pending:
                in_pipe = _fionread(self._fd)
                for waiter in pending:
                    waiter.remaining = in_pipe
            ready = [w for w in self._waiters if w.remaining is not None and w.remaining <= 0]
            self._waiters = [w for w in self._waiters if w not in ready]
            stopping = self._stopping
        for waiter in ready:
            _resolve(waiter)
        return stopping

    def _drain(self, limit: int) -> None:
        """On stop: pass on at least `limit` bytes, or until the pipe is empty or at EOF.

        Bounded, because a process that survived the sweep could keep writing forever.
        """
        sent = 0
        while sent < limit:
            try:
                moved = self._move()
            except BlockingIOError:
                return
            if not moved:
                return
            sent += moved

    def _move(self) -> int:
        """Pass on one chunk; how many bytes (0 at EOF). BlockingIOError when the pipe is empty."""
        if self._splice is not None and self.error is None:
            moved = self._splice(self._fd, CHUNK)
            if moved is not None:
                self._account(moved)
                return moved
        data = os.read(self._fd, CHUNK)
        if data:
            self._deliver(data)
        return len(data)

    def _deliver(self, data: bytes) -> None:
        if self.error is None:
            try:
                self._output.write(data)
            except OSError as err:
                # Disk full or similar: keep draining so the task does not block on a full pipe.
                self.error = err
                _log.error("task output is being lost: the log sink failed: %s", err)
        self._account(len(data))

    def _account(self, count: int) -> None:
        self.bytes += count
        with self._lock:
            for waiter in self._waiters:
                if waiter.remaining is not None:
                    waiter.remaining -= count

    def _finish(self) -> None:
        with self._lock:
            self._finished = True
            waiters, self._waiters = self._waiters, []
            os.close(self._fd)
            os.close(self._wake_r)
            os.close(self._wake_w)
        for waiter in waiters:
            _resolve(waiter)
