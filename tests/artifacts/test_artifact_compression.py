"""The parallel gzip copy is one valid gzip member, as small as a single-stream one."""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import zlib
from pathlib import Path

import pytest
from isal import isal_zlib

from generic_worker.artifacts.compression import BLOCK, DEFAULT_LEVEL, gzip_copy
from generic_worker.artifacts.transfer import FileSource

LINE = b"[taskcluster 2030-01-01T00:00:00.000Z] building module %d of the tree, all fine\n"


def text(size: int) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < size:
        out += LINE % i
        i += 1
    return bytes(out[:size])


async def copy_of(path: Path, level: int = DEFAULT_LEVEL) -> bytes:
    async with await FileSource.open(path) as source:
        async with await gzip_copy(source, level, path.parent) as compressed:
            return await compressed.read_all()


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 5 * BLOCK + 12345])
async def test_round_trip_at_block_boundaries(tmp_path: Path, size: int) -> None:
    data = text(size // 2) + os.urandom(size - size // 2)
    path = tmp_path / "data"
    path.write_bytes(data)
    compressed = await copy_of(path)
    assert compressed[:2] == b"\x1f\x8b"
    assert gzip.decompress(compressed) == data
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert decompressor.decompress(compressed) == data
    assert decompressor.eof and decompressor.unused_data == b""  # exactly one member, nothing after


async def test_gzip_tool_accepts_it_and_ratio_matches_one_stream(tmp_path: Path) -> None:
    data = text(6 * BLOCK)
    path = tmp_path / "log.txt"
    path.write_bytes(data)
    compressed = await copy_of(path)
    single = isal_zlib.compress(data, DEFAULT_LEVEL)
    assert len(compressed) <= len(single) * 1.01 + 64  # the primed dictionaries keep the ratio
    if shutil.which("gzip"):
        (tmp_path / "log.txt.gz").write_bytes(compressed)
        tool = await asyncio.create_subprocess_exec(
            "gzip", "-dc", str(tmp_path / "log.txt.gz"), stdout=asyncio.subprocess.PIPE
        )
        stdout, _ = await tool.communicate()
        assert (tool.returncode, stdout == data) == (0, True)


async def test_level_is_honoured(tmp_path: Path) -> None:
    data = text(2 * BLOCK)
    path = tmp_path / "log.txt"
    path.write_bytes(data)
    fast, small = await copy_of(path, 0), await copy_of(path, 3)
    assert gzip.decompress(fast) == gzip.decompress(small) == data
    assert len(fast) > len(small)


async def test_the_temporary_copy_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(text(BLOCK * 2))
    await copy_of(path)
    assert await asyncio.to_thread(os.listdir, tmp_path) == ["data"]
