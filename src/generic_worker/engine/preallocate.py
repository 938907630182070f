"""Disk blocks held beyond the end of a file, so its last line can always be written.

Linux `fallocate(2)` with `FALLOC_FL_KEEP_SIZE` allocates blocks past the end of a file without
changing its size: readers see nothing, and later appends land in blocks that are already ours,
so they cannot fail for lack of space. `FALLOC_FL_PUNCH_HOLE` gives unused ones back. Python's
`os.posix_fallocate` has no flags (it would grow the file), hence the libc call. Where the call
does not exist (macOS) or the file system refuses it, `reserve` answers False and the caller does
without a reserve.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from functools import cache

_KEEP_SIZE = 0x01
_PUNCH_HOLE = 0x02

_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENODEV})
"""What a file system without (this kind of) fallocate answers."""

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
"""The errors that mean "the disk (or the user's quota) is full"."""


@cache
def _fallocate() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    # Only Linux's C library has it (macOS has no such call): looked up, not assumed.
    function = getattr(ctypes.CDLL(None, use_errno=True), "fallocate64", None)
    if function is None:
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    function.restype = ctypes.c_int
    return function


def _call(fd: int, mode: int, offset: int, length: int) -> None:
    function = _fallocate()
    if function is None:
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
    if function(fd, mode, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def reserve(fd: int, offset: int, length: int) -> bool:
    """Hold `length` bytes of blocks from `offset` without changing the file's size (blocking).

    True when held; False when this system or file system cannot do it. Raises OSError when it
    could but failed, e.g. ENOSPC (then nothing new is held on tmpfs; ext4 may keep a part).
    """
    try:
        _call(fd, _KEEP_SIZE, offset, length)
    except OSError as e:
        if e.errno in _UNSUPPORTED:
            return False
        raise
    return True


def release(fd: int, size: int, length: int) -> None:
    """Give back the blocks held past `size`, the file's size, for `length` bytes (best effort).

    Both ways, because file systems differ: tmpfs frees them on a hole punch (not on a truncate
    to the same size), ext4 on a truncate to the same size (it ignores punches past the end).
    Blocking. Failures are ignored: the blocks go with the file anyway.
    """
    with contextlib.suppress(OSError):
        _call(fd, _KEEP_SIZE | _PUNCH_HOLE, size, length)
    with contextlib.suppress(OSError):
        os.ftruncate(fd, size)
