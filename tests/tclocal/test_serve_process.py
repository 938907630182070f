"""`tc-local serve` as a real process: credentials printed, clean stop, constant-memory blobs."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import slugid
import taskcluster.aio

from tclocal.core.timestamps import from_now
from tclocal.exitcodes import ExitCode
from tclocal.testing import unique_worker_type

pytestmark = pytest.mark.tclocal_only("runs the `tc-local serve` process")

CHUNK = 1 << 20
# 256 MiB keeps the test quick; the code path is the same for 2 GiB (bounded chunks, sendfile),
# which bench/ and the design cover.
SIZE = 256 * CHUNK
MEMORY_BUDGET = 64 * CHUNK


@dataclass
class Served:
    process: asyncio.subprocess.Process
    root_url: str
    client_id: str
    access_token: str


async def _read_until(stream: asyncio.StreamReader, pattern: str) -> tuple[str, str]:
    seen = ""
    while True:
        line = (await asyncio.wait_for(stream.readline(), 30)).decode()
        assert line, f"tc-local exited early; output so far:\n{seen}"
        seen += line
        match = re.search(pattern, seen)
        if match:
            return match.group(1), seen


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tclocal", "serve", "--port", "0", "--data-dir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        _, output = await _read_until(process.stdout, r"TASKCLUSTER_ACCESS_TOKEN=(\S+)")
        root_url = re.search(r"TASKCLUSTER_ROOT_URL=(\S+)", output)
        client_id = re.search(r"TASKCLUSTER_CLIENT_ID=(\S+)", output)
        token = re.search(r"TASKCLUSTER_ACCESS_TOKEN=(\S+)", output)
        assert root_url and client_id and token
        assert root_url.group(1).startswith("http://127.0.0.1:")
        yield Served(process, root_url.group(1), client_id.group(1), token.group(1))
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def _memory_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    assert match
    return int(match.group(1))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_stops_cleanly_on_signal(served: Served, sig: signal.Signals) -> None:
    async with aiohttp.ClientSession() as session:
        queue = taskcluster.aio.Queue({"rootUrl": served.root_url}, session=session)
        assert (await queue.ping())["alive"] is True
    served.process.send_signal(sig)
    assert await asyncio.wait_for(served.process.wait(), 30) == ExitCode.OK


async def _body(digest: hashlib._Hash) -> AsyncIterator[bytes]:
    block = os.urandom(CHUNK)
    for i in range(SIZE // CHUNK):
        chunk = block[i % 7 :] + block[: i % 7]  # vary the content without paying for randomness
        digest.update(chunk)
        yield chunk


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to read memory")
async def test_large_blob_streams_in_constant_memory(served: Served) -> None:
    options = {
        "rootUrl": served.root_url,
        "credentials": {"clientId": served.client_id, "accessToken": served.access_token},
    }
    worker_type = unique_worker_type()
    pid = served.process.pid
    async with aiohttp.ClientSession() as session:
        queue = taskcluster.aio.Queue(options, session=session)
        task_id = slugid.nice()
        task = {
            "provisionerId": "tc-local",
            "workerType": worker_type,
            "created": from_now(0),
            "deadline": from_now(600),
            "payload": {},
            "metadata": {
                "name": "big",
                "description": "big",
                "owner": "t@example.com",
                "source": "https://x/",
            },
        }
        await queue.createTask(task_id, task)
        await queue.claimWork(f"tc-local/{worker_type}", {"workerGroup": "g", "workerId": "w", "tasks": 1})
        created = await queue.createArtifact(
            task_id,
            0,
            "public/big.bin",
            {"storageType": "s3", "contentType": "application/octet-stream", "expires": from_now(3600)},
        )
        baseline = _memory_kib(pid, "VmRSS")
        sent = hashlib.sha256()
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(SIZE)}
        async with session.put(created["putUrl"], data=_body(sent), headers=headers) as response:
            assert response.status == 200
        found = await queue.getArtifact(task_id, 0, "public/big.bin")
        received = hashlib.sha256()
        size = 0
        async with session.get(found["url"]) as response:
            assert response.headers["Content-Length"] == str(SIZE)
            async for chunk in response.content.iter_chunked(CHUNK):
                received.update(chunk)
                size += len(chunk)
        assert size == SIZE and received.hexdigest() == sent.hexdigest()
        peak = _memory_kib(pid, "VmHWM")
    assert (peak - baseline) * 1024 < MEMORY_BUDGET, f"server grew by {(peak - baseline) // 1024} MiB"
