"""Copying a run's artifacts to a local folder, their names as relative paths.

Each body streams to disk in chunks (gzip content-encoding decoded), so a large artifact costs
no memory. A name that would leave the folder (`..`, an absolute path) is refused, never
written. Reference and link artifacts have no body of their own and are skipped; error
artifacts are reported with their message.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp

CHUNK = 256 * 1024


@dataclass(frozen=True)
class CopiedArtifact:
    """One artifact of the run: where it went and its size, or why it was not copied."""

    name: str
    path: Path | None
    size: int
    problem: str = ""


def local_path(folder: Path, name: str) -> Path | None:
    """Where artifact `name` goes under `folder`, or None when the name would escape it."""
    parts = name.split("/")
    if any(p in ("..", ".", "") for p in parts):  # also catches "", "/abs" and "a//b"
        return None
    return folder.joinpath(*parts)


async def _list(queue: Any, task_id: str, run_id: int) -> list[dict[str, Any]]:
    artifacts: list[dict[str, Any]] = []
    query: dict[str, str] = {}
    while True:
        page = await queue.listArtifacts(task_id, str(run_id), query=query)
        artifacts += page["artifacts"]
        if not page.get("continuationToken"):
            return artifacts
        query = {"continuationToken": page["continuationToken"]}


async def _download(session: aiohttp.ClientSession, url: str, path: Path) -> int:
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    size = 0
    async with session.get(url) as response:
        response.raise_for_status()
        handle: BinaryIO = await asyncio.to_thread(open, path, "wb")  # noqa: ASYNC230
        try:
            async for chunk in response.content.iter_chunked(CHUNK):
                await asyncio.to_thread(handle.write, chunk)
                size += len(chunk)
        finally:
            await asyncio.to_thread(handle.close)
    return size


async def copy_artifacts(
    queue: Any, session: aiohttp.ClientSession, task_id: str, run_id: int, folder: Path
) -> list[CopiedArtifact]:
    """Download every artifact with a body into `folder`; report each one."""
    copied = []
    for artifact in await _list(queue, task_id, run_id):
        name, kind = artifact["name"], artifact["storageType"]
        if kind in ("reference", "link"):
            continue
        path = local_path(folder, name)
        if kind == "error":
            url = queue.buildSignedUrl("getArtifact", task_id, str(run_id), name)
            async with session.get(url) as response:
                body = await response.json(content_type=None)
            copied.append(CopiedArtifact(name, None, 0, f"error artifact: {body.get('message', '')}"))
        elif path is None:
            copied.append(CopiedArtifact(name, None, 0, "not copied: the name leaves the artifacts folder"))
        else:
            url = queue.buildSignedUrl("getArtifact", task_id, str(run_id), name)
            try:
                size = await _download(session, url, path)
            except (aiohttp.ClientError, OSError) as e:
                copied.append(CopiedArtifact(name, None, 0, f"not copied: {e}"))
            else:
                copied.append(CopiedArtifact(name, path, size))
    return copied
