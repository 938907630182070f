"""Real content for mount tests: dependency tasks with artifacts on tc-local, and a loopback HTTP server.

`publish_task` creates, claims and completes a task through the official client (root
credentials), with artifacts stored as s3 (optionally gzip-encoded, as the worker uploads them)
or through the object service, and optionally indexes it. `ContentServer` serves URL content
from 127.0.0.1, counts requests per path and can fail the first requests with 500s.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
import slugid
import taskcluster.aio
from aiohttp import web

from generic_worker.timefmt import now, to_tc
from tclocal.testing import RunningTCLocal, unique_worker_type


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def publish_task(
    tc: RunningTCLocal,
    artifacts: dict[str, bytes],
    *,
    storage: str = "s3",
    gzip_encoded: bool = False,
    index: str | None = None,
    rank: int = 0,
) -> str:
    """A completed task with `artifacts` (name -> content); returns its taskId."""
    worker_type = unique_worker_type("dep")
    task_id: str = slugid.nice()
    expires = to_tc(now() + timedelta(days=1))
    async with aiohttp.ClientSession() as session:
        queue = taskcluster.aio.Queue(tc.options(), session=session)
        await queue.createTask(task_id, tc.make_task(provisionerId="tc-local", workerType=worker_type))
        claim = await queue.claimWork(
            f"tc-local/{worker_type}", {"tasks": 1, "workerGroup": "g", "workerId": "w"}
        )
        run_id = str(claim["tasks"][0]["runId"])
        for name, data in artifacts.items():
            if storage == "object":
                await _object_artifact(tc, session, queue, task_id, run_id, name, data, expires)
            else:
                await _s3_artifact(session, queue, task_id, run_id, name, data, expires, gzip_encoded)
        await queue.reportCompleted(task_id, run_id)
        if index is not None:
            idx = taskcluster.aio.Index(tc.options(), session=session)
            await idx.insertTask(index, {"taskId": task_id, "rank": rank, "data": {}, "expires": expires})
    return task_id


async def _s3_artifact(session, queue, task_id, run_id, name, data, expires, gzip_encoded) -> None:
    request = {"storageType": "s3", "contentType": "application/octet-stream", "expires": expires}
    answer = await queue.createArtifact(task_id, run_id, name, request)
    headers = {"Content-Type": answer["contentType"]}
    body = data
    if gzip_encoded:
        body = gzip.compress(data)
        headers["Content-Encoding"] = "gzip"
    async with session.put(answer["putUrl"], data=body, headers=headers) as response:
        assert response.status == 200, await response.text()


async def _object_artifact(tc, session, queue, task_id, run_id, name, data, expires) -> None:
    request = {"storageType": "object", "contentType": "application/octet-stream", "expires": expires}
    answer = await queue.createArtifact(task_id, run_id, name, request)
    objects = taskcluster.aio.Object(tc.options(answer["credentials"]), session=session)
    methods = {
        "dataInline": {
            "contentType": "application/octet-stream",
            "objectData": base64.b64encode(data).decode(),
        }
    }
    await objects.createUpload(
        answer["name"],
        {
            "projectId": answer["projectId"],
            "uploadId": answer["uploadId"],
            "expires": answer["expires"],
            "proposedUploadMethods": methods,
        },
    )
    hashes = {"sha256": sha256(data), "sha512": hashlib.sha512(data).hexdigest()}
    await objects.finishUpload(
        answer["name"], {"projectId": answer["projectId"], "uploadId": answer["uploadId"], "hashes": hashes}
    )
    await queue.finishArtifact(task_id, run_id, name, {"uploadId": answer["uploadId"]})


@dataclass
class ContentServer:
    """Files served on loopback; `hits` counts GETs per path; `fail_first[path]` 500s to send first."""

    url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    fail_first: dict[str, int] = field(default_factory=dict)

    def add(self, path: str, data: bytes) -> str:
        self.files[path] = data
        return f"{self.url}/{path}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        self.hits[path] += 1
        if self.fail_first.get(path, 0) > 0:
            self.fail_first[path] -= 1
            return web.Response(status=500, text="injected failure")
        data = self.files.get(path)
        if data is None:
            return web.Response(status=404, text="no such file")
        return web.Response(body=data, content_type="application/octet-stream")


@asynccontextmanager
async def content_server() -> AsyncIterator[ContentServer]:
    """A `ContentServer` on an ephemeral loopback port."""
    server = ContentServer()
    app = web.Application()
    app.router.add_get("/{path:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


def payload(mounts: list[dict[str, Any]], command: str = "true", **extra: Any) -> dict[str, Any]:
    """A payload with `mounts` running one shell command."""
    return {"command": [["/bin/sh", "-c", command]], "maxRunTime": 60, "mounts": mounts, **extra}
