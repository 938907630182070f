"""Blocking file operations of mounts (call through `asyncio.to_thread`).

- `hash_file`, `copy_and_hash`: SHA-256 of a file (and of a copy as it is written);
- `copy_file`: a file mount's copy out of the download cache, with `copy_file_range(2)` (the
  kernel copies page to page; no round trip through Python), never following a symbolic link
  at the target;
- `decompress_file`: a file mount with `format`, streamed through a bounded decompressor and
  charged to a `Budget`;
- `move_directory`: lending and returning caches by `rename(2)`, with a copy as the fallback
  when `cachesDir` and the tasks directory are on different filesystems.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path

from generic_worker.mounts.compression import open_decompressed
from generic_worker.mounts.diskspace import Budget

CHUNK = 1 << 20
_TARGET_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_target(target: Path) -> int:
    return os.open(target, _TARGET_FLAGS, 0o644)


def copy_file(source: Path, target: Path) -> int:
    """Copy `source` over `target` (created 0644, not through a link); return the size."""
    with open(source, "rb", buffering=0) as src:
        size = os.fstat(src.fileno()).st_size
        fd = _open_target(target)
        try:
            _copy_range(src.fileno(), fd, size)
        finally:
            os.close(fd)
    return size


def _copy_range(src: int, dst: int, size: int) -> None:
    done = 0
    try:
        while done < size:
            n = os.copy_file_range(src, dst, min(size - done, 1 << 30))
            if n == 0:
                break
            done += n
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            raise
        # Not supported here (old kernel, some filesystems): copy through user space.
        while chunk := os.pread(src, CHUNK, done):
            view = memoryview(chunk)
            while view:
                view = view[os.write(dst, view) :]
            done += len(chunk)


def copy_and_hash(source: Path, dest: Path) -> str:
    """Copy `source` to a new file `dest` and return the SHA-256 of the bytes copied (blocking)."""
    h = hashlib.sha256()
    with open(source, "rb", buffering=0) as src, open(dest, "xb", buffering=0) as dst:
        buffer = bytearray(1 << 20)
        view = memoryview(buffer)
        while n := src.readinto(buffer):
            dst.write(view[:n])
            h.update(view[:n])
    return h.hexdigest()


def hash_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks (blocking)."""
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buffer = bytearray(1 << 20)
        view = memoryview(buffer)
        while n := f.readinto(buffer):
            h.update(view[:n])
    return h.hexdigest()


def decompress_file(source: Path, compression: str, target: Path, budget: Budget) -> int:
    """Write the decompressed content of `source` to `target`; return the size written."""
    with open(source, "rb") as raw:
        reader = open_decompressed(raw, compression)
        fd = _open_target(target)
        try:
            while chunk := reader.read(CHUNK):
                budget.spend(len(chunk))
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    return budget.written


def move_directory(source: Path, target: Path) -> bool:
    """Move a directory by rename; return False if it had to be copied (different filesystems)."""
    try:
        os.rename(source, target)
        return True
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
    shutil.copytree(source, target, symlinks=True)
    shutil.rmtree(source)
    return False
