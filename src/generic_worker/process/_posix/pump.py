"""The pump: a thread that moves a command's output from its pipe into the task's `OutputSink`.

A thread doing `os.read(fd, 1 MiB)` on a 1 MiB pipe runs at the speed of the child writing the file
itself (deps.md §5.1), and it keeps the sink's (blocking) file writes off the event loop.

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
from dataclasses import dataclass

from ..model import OutputSink

_log = logging.getLogger(__name__)

CHUNK = 1 << 20  # one read takes what a full 1 MiB pipe holds


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


def _fionread(fd: int) -> int:
    """How many bytes are waiting in the pipe."""
    raw = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    return int(struct.unpack("i", raw)[0])


class Pump:
    """Copies everything from `fd` (the read end of a command's pipe) into `output`, in a thread.

    The pump owns `fd` and closes it when it finishes: at EOF (every writer is gone), or after
    `stop()`. It never blocks anyone but itself: `flush()` is awaited on the loop.
    """

    def __init__(self, fd: int, output: OutputSink, name: str) -> None:
        self._fd = fd
        self._output = output
        os.set_blocking(fd, False)  # only our read end: the writers' end is a separate description
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._lock = threading.Lock()
        self._waiters: list[_Waiter] = []
        self._stopping = False
        self._finished = False
        self.error: OSError | None = None  # the first error the sink raised, if any
        self.bytes = 0  # how much was passed to the sink
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        """Start the pump thread."""
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
        if self._thread.is_alive():
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
        try:
            # Loop top: nothing read is still unsent, so FIONREAD now bounds what flush() needs.
            while not self._serve_waiters():
                poller.poll()
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
                if not self._read_once():
                    return  # EOF: every writer has exited
            self._drain(_fionread(self._fd))
        finally:
            self._finish()

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

    def _read_once(self) -> bool:
        """Pass on one chunk if there is one; False at EOF."""
        try:
            data = os.read(self._fd, CHUNK)
        except BlockingIOError:
            return True
        if not data:
            return False
        self._deliver(data)
        return True

    def _drain(self, limit: int) -> None:
        """On stop: pass on at least `limit` bytes, or until the pipe is empty or at EOF.

        Bounded, because a process that survived the sweep could keep writing forever.
        """
        sent = 0
        while sent < limit:
            try:
                data = os.read(self._fd, CHUNK)
            except BlockingIOError:
                return
            if not data:
                return
            self._deliver(data)
            sent += len(data)

    def _deliver(self, data: bytes) -> None:
        if self.error is None:
            try:
                self._output.write(data)
            except OSError as err:
                # Disk full or similar: keep draining so the task does not block on a full pipe.
                self.error = err
                _log.error("task output is being lost: the log sink failed: %s", err)
        self.bytes += len(data)
        with self._lock:
            for waiter in self._waiters:
                if waiter.remaining is not None:
                    waiter.remaining -= len(data)

    def _finish(self) -> None:
        with self._lock:
            self._finished = True
            waiters, self._waiters = self._waiters, []
            os.close(self._fd)
            os.close(self._wake_r)
            os.close(self._wake_w)
        for waiter in waiters:
            _resolve(waiter)
