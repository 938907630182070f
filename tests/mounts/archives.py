"""Builders of real archives and compressed files for mount tests (including hostile ones)."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import time
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import brotli
import lz4.frame
import zstandard


@dataclass
class Entry:
    """One archive entry: kind is file, dir, symlink or hardlink."""

    name: str
    kind: str = "file"
    data: bytes = b""
    link: str = ""
    mode: int = 0o644


def compress(data: bytes, fmt: str) -> bytes:
    """`data` compressed with a payload `format` name."""
    if fmt == "gz":
        return gzip.compress(data, compresslevel=1)
    if fmt == "bz2":
        return bz2.compress(data, compresslevel=1)
    if fmt == "xz":
        return lzma.compress(data, preset=0)
    if fmt == "zst":
        return zstandard.ZstdCompressor(level=1).compress(data)
    if fmt == "zz":
        return zlib.compress(data, 1)
    if fmt == "br":
        return bytes(brotli.compress(data, quality=1))
    if fmt == "lz4":
        return bytes(lz4.frame.compress(data))
    raise ValueError(fmt)


def tar_bytes(entries: Iterable[Entry]) -> bytes:
    """An uncompressed tar archive (PAX format) with `entries`, in order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.mode = e.mode
            info.mtime = int(time.time())
            if e.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif e.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = e.link
                tar.addfile(info)
            elif e.kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = e.link
                tar.addfile(info)
            else:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
    return buffer.getvalue()


def zip_bytes(entries: Iterable[Entry]) -> bytes:
    """A zip archive with `entries` (symbolic links stored the Unix way, in external_attr)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for e in entries:
            if e.kind == "dir":
                zf.writestr(zipfile.ZipInfo(e.name.rstrip("/") + "/"), b"")
                continue
            info = zipfile.ZipInfo(e.name)
            if e.kind == "symlink":
                info.external_attr = (0o120777 << 16) | 0x20
                zf.writestr(info, e.link)
            else:
                info.external_attr = (0o100000 | e.mode) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, e.data)
    return buffer.getvalue()


def archive(entries: list[Entry], fmt: str) -> bytes:
    """An archive of `entries` in a directory-mount `format` (zip, tar, tar.<compression>)."""
    if fmt == "zip":
        return zip_bytes(entries)
    data = tar_bytes(entries)
    return data if fmt == "tar" else compress(data, fmt.removeprefix("tar."))


def _zero_stream(compressor: object, size: int) -> None:
    block = bytes(1 << 20)
    left = size
    while left:
        n = min(left, len(block))
        compressor.write(block[:n])  # type: ignore[attr-defined]
        left -= n


def tar_bomb(*sizes: int) -> bytes:
    """A tar.zst of files of zero bytes with the given sizes (built streaming: small memory)."""
    out = io.BytesIO()
    compressor = zstandard.ZstdCompressor(level=1).stream_writer(out, closefd=False)
    for i, size in enumerate(sizes):
        info = tarfile.TarInfo(f"zeros{i}.bin")
        info.size = size
        compressor.write(info.tobuf(format=tarfile.PAX_FORMAT))
        _zero_stream(compressor, size)
        compressor.write(bytes((512 - size % 512) % 512))
    compressor.write(bytes(1024))
    compressor.close()
    return out.getvalue()


def zeros_zst(size: int) -> bytes:
    """`size` zero bytes as one zstd frame (built streaming)."""
    out = io.BytesIO()
    compressor = zstandard.ZstdCompressor(level=1).stream_writer(out, closefd=False)
    _zero_stream(compressor, size)
    compressor.close()
    return out.getvalue()
