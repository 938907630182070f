"""Waiting for one child to exit without blocking the event loop, keeping its rusage.

Linux: a pidfd (`os.pidfd_open`) becomes readable when the child exits; `loop.add_reader` calls
us back and `os.wait4(pid, WNOHANG)` reaps it with its rusage. Elsewhere (macOS) a thread waits.
asyncio's own child watcher is not used (it is deprecated, and a SIGCHLD-based one would race our
per-pid reaping), and nothing here ever calls `waitpid(-1)`: adopted orphans belong to the sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import threading
import time
from dataclasses import dataclass

from . import registry


@dataclass(frozen=True)
class Exit:
    """A reaped child: its raw wait status and rusage (both None if someone else reaped it)."""

    status: int | None
    rusage: resource.struct_rusage | None
    at: float  # time.monotonic() when we noticed


def _reap(pid: int) -> Exit | None:
    """Reap `pid` if it has exited (None if it still runs). Holds the registry lock."""
    with registry.LOCK:
        try:
            reaped, status, rusage = os.wait4(pid, os.WNOHANG)
        except ChildProcessError:  # not ours any more: should not happen, but never hang on it
            registry.release_waited(pid)
            return Exit(None, None, time.monotonic())
        if reaped == 0:
            return None
        registry.release_waited(pid)
        return Exit(status, rusage, time.monotonic())


def watch_exit(pid: int, *, use_pidfd: bool | None = None) -> asyncio.Future[Exit]:
    """Return a future that resolves, on the running loop, once child `pid` exited and is reaped.

    `pid` must be registered in `registry` (so nobody else reaps it). `use_pidfd=False` forces the
    thread fallback that macOS uses (the tests exercise both on Linux). The future is never
    cancelled by us; callers shield it.
    """
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Exit] = loop.create_future()
    if use_pidfd is None:
        use_pidfd = hasattr(os, "pidfd_open")
    if use_pidfd:
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # ENOSYS on kernels before 5.3, EMFILE: fall back to a thread
            pass
        else:
            _watch_pidfd(loop, fut, pid, pidfd)
            return fut
    threading.Thread(target=_wait_in_thread, args=(loop, fut, pid), name=f"wait-{pid}", daemon=True).start()
    return fut


def _watch_pidfd(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Exit], pid: int, pidfd: int) -> None:
    def on_readable() -> None:
        exited = _reap(pid)
        if exited is None:  # readable means exited; a spurious wakeup just waits again
            return
        loop.remove_reader(pidfd)
        os.close(pidfd)
        if not fut.done():
            fut.set_result(exited)

    loop.add_reader(pidfd, on_readable)


def _wait_in_thread(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Exit], pid: int) -> None:
    """Block until `pid` exits, then hand over to the loop.

    With `waitid(WNOWAIT)` the child stays a zombie until the loop reaps it, so its pid (and thus
    its process group id) cannot be reused while the loop still thinks it is running. Where there
    is no waitid, this thread reaps it itself: then for a moment the loop may still signal the old
    group id, which could only hit another process if the pid space wrapped around in that moment.
    """
    if hasattr(os, "waitid"):
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        _hand_over(loop, fut, pid, None)
        return
    try:
        _, status, rusage = os.wait4(pid, 0)
        exited = Exit(status, rusage, time.monotonic())
    except ChildProcessError:
        exited = Exit(None, None, time.monotonic())
    with registry.LOCK:
        registry.release_waited(pid)
    _hand_over(loop, fut, pid, exited)


def _hand_over(
    loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Exit], pid: int, exited: Exit | None
) -> None:
    def finish() -> None:
        result = exited if exited is not None else _reap(pid)
        if result is None:  # cannot happen after waitid said it exited; wait again to be safe
            threading.Thread(target=_wait_in_thread, args=(loop, fut, pid), daemon=True).start()
        elif not fut.done():
            fut.set_result(result)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
        loop.call_soon_threadsafe(finish)
