"""Uploads stream: memory does not grow with the artifact size (bench/artifact_upload.py covers 1 GiB).

The peak resident set of this process (uploader and the in-process tc-local receiving the body)
is reset through /proc/self/clear_refs before the upload and read back from VmHWM afterwards;
where that is unavailable, tracemalloc's peak of Python allocations is used instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
from yarl import URL

from generic_worker.artifacts import FileArtifact
from generic_worker.tc import ServiceFactory

from .conftest import EXPIRES, ClaimedRun, UploaderFactory

MiB = 1024 * 1024
SIZE = 200 * MiB
LIMIT = 48 * MiB
"""Allowed growth of the peak: a few 1 MiB chunks in flight on each side, nowhere near SIZE."""


def _read_status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        _read_status("VmHWM")
    except (OSError, LookupError):
        return False
    return True


async def peak_growth(action: Callable[[], Awaitable[object]]) -> int:
    """How far the process's memory peak rose above its level before `action`."""
    if _reset_peak():
        before = _read_status("VmRSS")
        await action()
        return _read_status("VmHWM") - before
    tracemalloc.start()
    try:
        await action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def write_file(path: Path, block: bytes, count: int) -> None:
    with path.open("wb") as out:
        for _ in range(count):
            out.write(block)


async def sha256_of_download(root_url: str, run: ClaimedRun, name: str) -> tuple[str, int]:
    url = f"{root_url}/api/queue/v1/task/{run.task_id}/runs/{run.run_id}/artifacts/{name.replace('/', '%2F')}"
    digest = hashlib.sha256()
    size = 0
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(URL(url, encoded=True)) as response:
            assert response.status == 200
            chunks: AsyncIterator[bytes] = response.content.iter_chunked(MiB)
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
    return digest.hexdigest(), size


async def test_large_identity_upload_keeps_memory_flat(
    tmp_path: Path, make_uploader: UploaderFactory, services: ServiceFactory, run: ClaimedRun
) -> None:
    block = os.urandom(MiB)
    path = tmp_path / "large.bin"
    await asyncio.to_thread(write_file, path, block, SIZE // MiB)
    uploader = make_uploader()
    large = FileArtifact("public/large.bin", path, EXPIRES, "application/octet-stream", "identity")
    results: list[object] = []

    async def upload() -> None:
        results.append(await uploader.upload(large))

    growth = await peak_growth(upload)
    assert results == [None]
    assert growth < LIMIT, f"peak memory grew by {growth / MiB:.1f} MiB for a {SIZE // MiB} MiB upload"
    expected = hashlib.sha256(block * (SIZE // MiB)).hexdigest()
    assert await sha256_of_download(services.root_url, run, "public/large.bin") == (expected, SIZE)


async def test_large_gzip_upload_keeps_memory_flat(
    tmp_path: Path, make_uploader: UploaderFactory, run: ClaimedRun
) -> None:
    line = b"[taskcluster 2030-01-01T00:00:00.000Z] compressible log line with some numbers 0123456789\n"
    block = line * (MiB // len(line) + 1)
    path = tmp_path / "large.log"
    await asyncio.to_thread(write_file, path, block, 100)
    uploader = make_uploader(gzip_level=1)
    large = FileArtifact("public/large.log", path, EXPIRES, "text/plain", "gzip")
    results: list[object] = []

    async def upload() -> None:
        results.append(await uploader.upload(large))

    growth = await peak_growth(upload)
    assert results == [None]
    assert growth < LIMIT, f"peak memory grew by {growth / MiB:.1f} MiB for a 100 MiB gzip upload"
