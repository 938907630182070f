"""gzip copies of artifacts, compressed on every core (the way pigz does it), in constant memory.

Presigned S3 PUTs need a Content-Length, so a gzip-encoded artifact is compressed into a
temporary file first; compression (about 30 MB/s per core at level 6) is then the slowest stage
of an upload, which is why it is spread over cores:
- the input is cut into 1 MiB blocks, each compressed as raw deflate on a shared pool of one
  thread per CPU (zlib releases the GIL), primed with the last 32 KiB of the previous block as
  dictionary so the ratio stays that of one stream;
- every block but the last ends with a sync flush (byte-aligned, not final), the last one with
  the final bit, so the concatenation is ONE valid deflate stream inside one gzip member (header
  with mtime 0 and no name, CRC-32 and size trailer) that any gzip reader accepts;
- at most two blocks per worker are in flight and results are written in order, so memory is a
  few MiB whatever the file size, and the pool bounds CPU use across parallel uploads.

The temporary file is unlinked as soon as it is created: it disappears with its descriptor, even
if the worker is killed.
"""

from __future__ import annotations

import asyncio
import os
import struct
import tempfile
import threading
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from generic_worker.artifacts.transfer import CHUNK, FileSource

BLOCK = CHUNK
WINDOW = 32 * 1024
"""deflate's history: the dictionary each block is primed with."""

GZIP_HEADER = bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3])
"""Magic, deflate, no flags, mtime 0, no extra flags, OS Unix."""

WORKERS = os.cpu_count() or 1
"""Compression threads: one per CPU."""

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _compression_pool() -> ThreadPoolExecutor:
    """The one compression pool (one thread per CPU), created on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="artifact-gzip")
        return _pool


def _deflate_block(level: int, data: bytes, dictionary: bytes, last: bool) -> bytes:
    if dictionary:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, zdict=dictionary)
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def gzip_stream(
    read_at: Callable[[int, int], bytes], size: int, write: Callable[[bytes], None], level: int
) -> None:
    """Blocking: compress `size` bytes read with `read_at(offset, length)` into `write`, as gzip."""
    pool = _compression_pool()
    window = 2 * WORKERS
    pending: deque[Future[bytes]] = deque()
    write(GZIP_HEADER)
    crc = 0
    offset = 0
    previous = b""
    try:
        if size == 0:
            write(_deflate_block(level, b"", b"", True))
        while offset < size or pending:
            while offset < size and len(pending) < window:
                length = min(BLOCK, size - offset)
                data = read_at(offset, length)
                offset += length
                crc = zlib.crc32(data, crc)
                pending.append(pool.submit(_deflate_block, level, data, previous, offset >= size))
                previous = data[-WINDOW:]
            write(pending.popleft().result())
    finally:
        for future in pending:
            future.cancel()
    write(struct.pack("<II", crc, size & 0xFFFFFFFF))


async def gzip_copy(source: FileSource, level: int, temp_dir: Path | None) -> FileSource:
    """Compress `source` into an anonymous temporary file (in `temp_dir`, default the system's).

    Raises LocalReadError when the source cannot be read, OSError when the copy cannot be written.
    """
    return await asyncio.to_thread(_gzip_copy, source, level, temp_dir)


def _gzip_copy(source: FileSource, level: int, temp_dir: Path | None) -> FileSource:
    fd, name = tempfile.mkstemp(prefix="generic-worker-artifact-", suffix=".gz", dir=temp_dir)
    os.unlink(name)  # anonymous from now on: it goes away with the descriptor, whatever happens
    written = 0

    def write(data: bytes) -> None:
        nonlocal written
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        written += len(data)

    try:
        gzip_stream(source.read_at, source.size, write, level)
    except BaseException:
        os.close(fd)
        raise
    return FileSource(fd, written, f"gzip copy of {source.description}")
