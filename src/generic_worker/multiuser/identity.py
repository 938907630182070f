"""Doing file work with a task user's rights, inside the (root) worker process.

Linux keeps credentials per thread in the kernel; only the C library makes `setresuid` apply to
every thread of a process. Calling the system calls directly changes just the calling thread, so a
dedicated worker thread can take a task user's effective uid, gid and supplementary groups, do
the work (open, stat, mkdir, extract...), and switch back. The kernel then checks every path
component, symlink and permission exactly as it would for the task's own processes, and files
it creates belong to the task user. Real and saved uid stay 0, which is what allows the switch
back; the effective capabilities are dropped while the effective uid is not 0 and come back with
it. Work runs in `IDENTITY_THREADS` threads of their own, never on the event loop or the
default executor, and each call switches and restores around exactly one function.

A file descriptor opened this way can then be read by any thread: uploads stream from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import platform
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache, partial
from typing import TypeVar

from generic_worker.process import TaskUser

T = TypeVar("T")

IDENTITY_THREADS = 4

# (setgroups, setresuid, setresgid) system call numbers; the 32-bit-id variants.
_SYSCALLS = {
    "x86_64": (116, 117, 119),
    "aarch64": (159, 147, 149),
    "arm64": (159, 147, 149),
}

_state = threading.local()


class IdentityError(OSError):
    """The thread could not take on (or give back) a user's credentials."""


@cache
def _calls() -> tuple[Callable[..., int], tuple[int, int, int]]:
    numbers = _SYSCALLS.get(platform.machine())
    if numbers is None:
        raise IdentityError(errno.ENOSYS, f"per-thread credentials not supported on {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall, numbers


def _syscall(number: int, *args: object) -> None:
    syscall, _ = _calls()
    if syscall(number, *args) != 0:
        code = ctypes.get_errno()
        raise IdentityError(code, os.strerror(code))


def _set_groups(groups: tuple[int, ...]) -> None:
    array = (ctypes.c_uint * max(1, len(groups)))(*groups)
    _syscall(_calls()[1][0], ctypes.c_size_t(len(groups)), array)


@contextlib.contextmanager
def _switched(user: TaskUser) -> Iterator[None]:
    """Run the calling thread as `user` (effective ids and groups) inside the block."""
    _, (_groups, setresuid, setresgid) = _calls()
    keep = ctypes.c_uint(0xFFFFFFFF)  # (uid_t)-1: leave that id unchanged
    saved_groups = tuple(os.getgroups())
    # Ordering: groups and gid while still root (they need CAP_SETGID), the uid last.
    _set_groups(user.groups)
    _syscall(setresgid, keep, ctypes.c_uint(user.gid), keep)
    _syscall(setresuid, keep, ctypes.c_uint(user.uid), keep)
    try:
        yield
    finally:
        try:
            _syscall(setresuid, keep, ctypes.c_uint(0), keep)
            _syscall(setresgid, keep, ctypes.c_uint(0), keep)
            _set_groups(saved_groups)
        except IdentityError:
            # Never hand a thread with a task user's rights to the next job: end the worker.
            os._exit(69)


def _run_as(user: TaskUser, fn: Callable[[], T]) -> T:
    with _switched(user):
        return fn()


@cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=IDENTITY_THREADS, thread_name_prefix="task-identity")


async def as_user(user: TaskUser | None, fn: Callable[..., T], *args: object) -> T:
    """Run blocking `fn(*args)` in an identity thread with `user`'s rights (None: as the worker).

    Exceptions from `fn` propagate (a PermissionError then means the task user may not do it).
    """
    call = partial(fn, *args)
    if user is None:
        return await asyncio.to_thread(call)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), _run_as, user, call)


def run_as_sync(user: TaskUser | None, fn: Callable[..., T], *args: object) -> T:
    """Blocking variant for code that already runs in a worker thread (never on the event loop)."""
    call = partial(fn, *args)
    if user is None:
        return call()
    return _executor().submit(_run_as, user, call).result()
