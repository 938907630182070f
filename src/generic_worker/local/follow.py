"""Following one task on the local queue: its live log as it is written, then its resolution.

The live log is read exactly as a person following a task in a browser would: through the
queue's `getArtifact` redirect for the `reference` artifact the worker publishes when the run
starts, streamed chunk by chunk to the terminal while the task writes it.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

import aiohttp

POLL_INTERVAL = 0.1
"""How often the run's state and artifacts are checked until the live log appears."""

RESOLVED = ("completed", "failed", "exception")


@dataclass(frozen=True)
class RunOutcome:
    """How the run resolved: state (completed / failed / exception), reason and duration."""

    state: str
    reason: str
    seconds: float | None


async def write_out(out: BinaryIO, data: bytes) -> None:
    """Write and flush off the event loop (a terminal or a pipe can block)."""

    def write() -> None:
        out.write(data)
        out.flush()

    await asyncio.to_thread(write)


async def _live_log_url(queue: Any, task_id: str, name: str, worker_done: Callable[[], bool]) -> str | None:
    """The signed getArtifact URL of run 0's live log once it exists; None if the run ends first."""
    while not worker_done():
        runs = (await queue.status(task_id))["status"]["runs"]
        if runs and runs[0]["state"] in RESOLVED:
            return None
        if runs and runs[0]["state"] == "running":
            listing = await queue.listArtifacts(task_id, "0")
            for artifact in listing["artifacts"]:
                if artifact["name"] == name and artifact["storageType"] == "reference":
                    return str(queue.buildSignedUrl("getArtifact", task_id, "0", name))
        await asyncio.sleep(POLL_INTERVAL)
    return None


async def stream_live_log(
    queue: Any,
    session: aiohttp.ClientSession,
    task_id: str,
    name: str,
    out: BinaryIO,
    worker_done: Callable[[], bool],
) -> bool:
    """Copy run 0's live log to `out` as it is written; False when there was none to follow."""
    url = await _live_log_url(queue, task_id, name, worker_done)
    if url is None:
        return False
    try:
        async with session.get(url) as response:
            if response.status != 200:
                return False
            async for chunk in response.content.iter_any():
                await write_out(out, chunk)
    except aiohttp.ClientError:
        return False  # the worker went away mid-stream: the backing log is printed instead
    return True


async def print_backing_log(
    queue: Any, session: aiohttp.ClientSession, task_id: str, name: str, out: BinaryIO
) -> None:
    """Print run 0's uploaded log (when there was no live log to follow, e.g. a malformed payload)."""
    url = queue.buildSignedUrl("getArtifact", task_id, "0", name)
    async with session.get(url, auto_decompress=False) as response:
        if response.status != 200:
            return
        body = await response.read()
        if response.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
    await write_out(out, body)


async def run_outcome(queue: Any, task_id: str) -> RunOutcome | None:
    """How run 0 resolved (a retry may already be pending as run 1), or None if it never did."""
    runs = (await queue.status(task_id))["status"]["runs"]
    if not runs or runs[0]["state"] not in RESOLVED:
        return None
    run = runs[0]
    seconds = None
    if run.get("started") and run.get("resolved"):
        started = datetime.fromisoformat(run["started"])
        seconds = (datetime.fromisoformat(run["resolved"]) - started).total_seconds()
    return RunOutcome(run["state"], run.get("reasonResolved", ""), seconds)
