"""gzip copies of artifacts, compressed with ISA-L on every core (the way pigz does it), in constant memory.

Presigned S3 PUTs need a Content-Length, so a gzip-encoded artifact is compressed into a
temporary file first. The deflate is Intel's ISA-L (`isal`), about 400 MB/s per core on log
text against zlib's 30 MB/s at level 6, for a 5 % larger output (docs/compression.md has the
measurements); it writes standard gzip that every reader accepts. The input is cut into 1 MiB
blocks (the scheme of `generic_worker.deflate`), each compressed on a shared pool of one thread
per CPU (ISA-L releases the GIL); at most two blocks per thread are in flight and results are
written in order, so memory is a few MiB whatever the file size, and the pool bounds CPU use
across parallel uploads. `deflate_range` can also finish a member that was begun elsewhere (the
backing log's, see `log_gzip.py`).

The temporary file is unlinked as soon as it is created: it disappears with its descriptor, even
if the worker is killed.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path

from isal import isal_zlib

from generic_worker.artifacts.transfer import FileSource
from generic_worker.deflate import BLOCK, DEFAULT_LEVEL, GZIP_HEADER, WINDOW, GzipMember, deflate_block

__all__ = [
    "BLOCK",
    "DEFAULT_LEVEL",
    "GZIP_HEADER",
    "GzipMember",
    "anonymous_file",
    "compression_pool",
    "deflate_range",
    "gzip_copy",
    "gzip_stream",
    "write_all",
]

WORKERS = os.cpu_count() or 1
"""Compression threads: one per CPU."""

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def compression_pool() -> ThreadPoolExecutor:
    """The one compression pool (one thread per CPU, normal priority), created on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="artifact-gzip")
        return _pool


def deflate_range(
    read_at: Callable[[int, int], bytes],
    start: int,
    end: int,
    member: GzipMember,
    write: Callable[[bytes], None],
    *,
    pool: Executor | None = None,
) -> None:
    """Blocking: deflate bytes [start, end) into `write` on `pool`, ending the deflate stream.

    The last block carries the final bit (an empty final block when the range is empty).
    `read_at` must be thread-safe: each job reads its own block and the 32 KiB before it (its
    dictionary; the first block uses `member.previous`) and checksums it, so the reads and the
    CRC run on every core too and this thread only writes the results in order.
    """
    pool = pool or compression_pool()
    window = 2 * WORKERS
    pending: deque[Future[tuple[bytes, int, int]]] = deque()
    offset = start
    level = member.level
    first_dictionary = member.previous

    def job(at: int, length: int, last: bool) -> tuple[bytes, int, int]:
        data = read_at(at, length)
        # Every block but the last is BLOCK long, so the window before a later one lies in range.
        dictionary = first_dictionary if at == start else read_at(at - WINDOW, WINDOW)
        return deflate_block(level, data, dictionary, last), isal_zlib.crc32(data), len(data)

    try:
        if start >= end:
            write(member.take(b"", True)())
        while offset < end or pending:
            while offset < end and len(pending) < window:
                length = min(BLOCK, end - offset)
                pending.append(pool.submit(job, offset, length, offset + length >= end))
                offset += length
            piece, crc, length = pending.popleft().result()
            member.absorb(crc, length)
            write(piece)
    finally:
        for future in pending:
            future.cancel()


def gzip_stream(
    read_at: Callable[[int, int], bytes], size: int, write: Callable[[bytes], None], level: int
) -> None:
    """Blocking: compress `size` bytes read with `read_at(offset, length)` into `write`, as gzip."""
    member = GzipMember(level)
    write(GZIP_HEADER)
    deflate_range(read_at, 0, size, member, write)
    write(member.trailer())


def anonymous_file(temp_dir: Path | None, prefix: str) -> int:
    """A new temporary file, already unlinked: it goes away with its descriptor, whatever happens."""
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".gz", dir=temp_dir)
    os.unlink(name)
    return fd


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of `data` to `fd` (os.write may take only part)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def gzip_copy(source: FileSource, level: int, temp_dir: Path | None) -> FileSource:
    """Compress `source` into an anonymous temporary file (in `temp_dir`, default the system's).

    Raises LocalReadError when the source cannot be read, OSError when the copy cannot be written.
    """
    return await asyncio.to_thread(_gzip_copy, source, level, temp_dir)


def _gzip_copy(source: FileSource, level: int, temp_dir: Path | None) -> FileSource:
    fd = anonymous_file(temp_dir, "generic-worker-artifact-")
    written = 0

    def write(data: bytes) -> None:
        nonlocal written
        write_all(fd, data)
        written += len(data)

    try:
        gzip_stream(source.read_at, source.size, write, level)
    except BaseException:
        os.close(fd)
        raise
    return FileSource(fd, written, f"gzip copy of {source.description}")
