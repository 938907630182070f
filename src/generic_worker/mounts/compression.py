"""Decompressing readers for the payload's `format` values, each with bounded memory.

Supported compressions: `gz` and `zz` (zlib) through ISA-L (`isal`, inflating about twice as
fast as zlib; docs/compression.md), `bz2` and `xz` from the standard library, `zst`
(zstandard), `br` (brotli) and `lz4` (lz4 frames). Every reader hands out at most what was asked
for, so a decompression bomb never inflates in memory: the size limit is enforced by whoever
writes the output (see `extract.py`). `lz`, `mz` and `sz` (and the `7z` and `rar` archives) have
no well-kept Python library, so they are refused with a clear message.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from collections.abc import Callable
from typing import BinaryIO, Protocol, cast

import brotli
import lz4.frame
import zstandard
from isal import igzip, isal_zlib

from generic_worker.mounts.errors import MountError

COMPRESSIONS = ("gz", "bz2", "xz", "zst", "zz", "br", "lz4")
"""File `format`s (and `tar.<x>` suffixes) this worker decompresses."""

ARCHIVE_FORMATS = ("zip", "tar", *(f"tar.{c}" for c in COMPRESSIONS))
"""Directory mount `format`s this worker extracts."""

DECOMPRESSION_ERRORS: tuple[type[Exception], ...] = (
    OSError,  # gzip.BadGzipFile (igzip's too), and truncated input
    EOFError,
    zlib.error,
    cast(type[Exception], isal_zlib.error),  # typed as an instance in isal's stubs
    lzma.LZMAError,
    zstandard.ZstdError,
    brotli.error,
    RuntimeError,  # lz4 reports corrupt frames as RuntimeError
    ValueError,
)
"""What a reader below may raise on corrupt input."""

_READ = 1 << 20


class _Decoder(Protocol):
    """An incremental decoder: `decode` returns roughly at most `max_length` bytes per call."""

    def needs_input(self) -> bool: ...

    def finished(self) -> bool: ...

    def decode(self, data: bytes, max_length: int) -> bytes: ...


class _StreamReader(io.RawIOBase):
    """A readable stream over compressed `raw`, decoded by an incremental, bounded decoder."""

    def __init__(self, raw: BinaryIO, decoder: _Decoder) -> None:
        self._raw = raw
        self._decoder = decoder
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            if self._decoder.finished():
                return 0
            data = self._raw.read(_READ) if self._decoder.needs_input() else b""
            out = self._decoder.decode(data, max(len(buffer), _READ))
            if not out and not data and not self._decoder.finished() and self._decoder.needs_input():
                # The input is exhausted and the decoder has nothing more to give.
                raise EOFError("compressed data ended before the end-of-stream marker was reached")
            self._pending = memoryview(out)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class _Zlib:
    def __init__(self) -> None:
        self._d = isal_zlib.decompressobj()

    def needs_input(self) -> bool:
        return not self._d.unconsumed_tail

    def finished(self) -> bool:
        return self._d.eof

    def decode(self, data: bytes, max_length: int) -> bytes:
        return self._d.decompress(self._d.unconsumed_tail + data, max_length)


class _Brotli:
    def __init__(self) -> None:
        self._d = brotli.Decompressor()

    def needs_input(self) -> bool:
        return bool(self._d.can_accept_more_data())

    def finished(self) -> bool:
        return bool(self._d.is_finished())

    def decode(self, data: bytes, max_length: int) -> bytes:
        out: bytes = self._d.process(data, output_buffer_limit=max_length)
        return out


Decompressed = io.BufferedIOBase
"""What `open_decompressed` returns: `read(n)` gives at most `n` decompressed bytes."""


def _buffered(reader: io.RawIOBase) -> Decompressed:
    return io.BufferedReader(reader, buffer_size=_READ)


def _zstd_reader(raw: BinaryIO) -> Decompressed:
    # zstandard's stream reader ends quietly at a truncated frame, so the frame structure is
    # checked first (cheap: it reads only the headers).
    if raw.seekable():
        start = raw.tell()
        check_zstd_frames(raw)
        raw.seek(start)
    reader = zstandard.ZstdDecompressor().stream_reader(raw, read_size=_READ, read_across_frames=True)
    return cast(Decompressed, reader)


_ZSTD_MAGIC = 0xFD2FB528
_FCS_SIZES = (0, 2, 4, 8)
_DICT_ID_SIZES = (0, 1, 2, 4)


def check_zstd_frames(raw: BinaryIO) -> None:
    """Walk the zstd frames of a seekable stream by their headers; `EOFError` if one is cut short."""
    end = raw.seek(0, io.SEEK_END)
    pos = raw.seek(0)

    def take(n: int) -> bytes:
        nonlocal pos
        raw.seek(pos)
        data = raw.read(n)
        if len(data) < n:
            raise EOFError("zstd data ended before the end of its last frame")
        pos += n
        return data

    while pos < end:
        magic = int.from_bytes(take(4), "little")
        if magic & 0xFFFFFFF0 == 0x184D2A50:  # a skippable frame
            pos += int.from_bytes(take(4), "little")
            continue
        if magic != _ZSTD_MAGIC:
            raise zstandard.ZstdError("not zstd data (unknown frame magic number)")
        descriptor = take(1)[0]
        single_segment = bool(descriptor & 0x20)
        fcs = _FCS_SIZES[descriptor >> 6] or (1 if single_segment else 0)
        pos += (0 if single_segment else 1) + _DICT_ID_SIZES[descriptor & 3] + fcs
        last = False
        while not last:
            header = int.from_bytes(take(3), "little")
            last, kind, size = bool(header & 1), (header >> 1) & 3, header >> 3
            pos += 1 if kind == 1 else size
        pos += 4 if descriptor & 0x04 else 0
    if pos > end:
        raise EOFError("zstd data ended before the end of its last frame")


_OPENERS: dict[str, Callable[[BinaryIO], Decompressed]] = {
    "gz": lambda raw: cast(Decompressed, igzip.IGzipFile(fileobj=raw, mode="rb")),  # type: ignore[no-untyped-call]
    "bz2": lambda raw: bz2.BZ2File(raw, mode="rb"),
    "xz": lambda raw: lzma.LZMAFile(raw, mode="rb"),
    "zst": _zstd_reader,
    "zz": lambda raw: _buffered(_StreamReader(raw, _Zlib())),
    "br": lambda raw: _buffered(_StreamReader(raw, _Brotli())),
    "lz4": lambda raw: cast(Decompressed, lz4.frame.LZ4FrameFile(raw, mode="rb")),
}


def open_decompressed(raw: BinaryIO, compression: str) -> Decompressed:
    """A reader of the decompressed bytes of `raw` (`compression` from `COMPRESSIONS`)."""
    opener = _OPENERS.get(compression)
    if opener is None:
        raise MountError(unsupported(compression, "file"))
    return opener(raw)


def unsupported(fmt: str, kind: str) -> str:
    """The message for a `format` this worker cannot handle (`kind`: "file" or "archive")."""
    known = COMPRESSIONS if kind == "file" else ARCHIVE_FORMATS
    return (
        f"{kind} format {fmt!r} is not supported by this worker (supported: {', '.join(known)}); "
        "repackage the content in one of those formats"
    )
