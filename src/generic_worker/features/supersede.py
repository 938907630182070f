"""Supersede (always on; acts only when the payload sets `supersederUrl`).

Asks `GET <supersederUrl>?taskId=<taskId>` (the query argument the seed's schema documents;
the seed itself forgot to append it) for `{"supersedes": [taskId, ...]}`. If the list is
non-empty and its first entry is another task, this task is superseded by it: the worker
writes `{"taskId": "<first>"}` to `<taskDir>/generic-worker/superseded-by.json`, uploads it as
`public/superseded-by.json`, resolves `exception/superseded`, and runs no commands. Today's
queue refuses that reason (400); the status manager then resolves the run `completed`
(TARGET §10), the log already naming the superseding task.

Any problem with the URL (unreachable, not 200, not the expected JSON) only warns, with the
seed's `[supersede]` lines, and the task runs normally.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from yarl import URL

from generic_worker.artifacts import FileArtifact
from generic_worker.engine.feature import FeatureBase, TaskFeature, TaskFeatureBase
from generic_worker.engine.taskrun import TaskRun
from generic_worker.errors import TaskError

ARTIFACT_NAME = "public/superseded-by.json"
ATTEMPTS = 3
TIMEOUT = aiohttp.ClientTimeout(total=30)
MAX_RESPONSE = 1 << 20
NOT_ABLE = "[supersede] Not able to see if this task has been superseded!"


class SupersedeFeature(FeatureBase):
    """Resolves a task as superseded when its superseder service says so."""

    name = "Supersede"

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """The per-task part."""
        return _Supersede(task)


class _Supersede(TaskFeatureBase):
    def __init__(self, task: TaskRun) -> None:
        self.task = task

    def reserved_artifacts(self) -> Sequence[str]:
        return (ARTIFACT_NAME,)

    async def start(self) -> None:
        task = self.task
        url = task.payload.get("supersederUrl")
        if not url:
            return
        supersedes = await self._ask(url)
        if not supersedes or supersedes[0] == task.task_id:
            return
        first = supersedes[0]
        path = task.gw_dir / "superseded-by.json"
        try:
            await asyncio.to_thread(_write_json, path, {"taskId": first})
        except OSError as e:
            # A full disk: the log below still names the superseding task; no artifact then.
            task.log.error(f"Could not write {ARTIFACT_NAME}: {e.strerror or e}")
        else:
            error = await task.publish(
                FileArtifact(
                    name=ARTIFACT_NAME,
                    path=path,
                    expires=task.expires,
                    content_type="application/json",
                    content_encoding="gzip",
                )
            )
            if error is not None:
                task.log.error(f"Could not upload {ARTIFACT_NAME}: {error.message}")
        raise TaskError.superseded(f"Task {task.task_id} has been superseded by task {first}")

    async def _ask(self, url: str) -> list[str] | None:
        """The `supersedes` list, or None (after the seed's warnings) if there is none to be had."""
        task = self.task
        try:
            body = await self._fetch(superseder_query(url, task.task_id))
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            task.log.warn(f"[supersede] Problem accessing supersederUrl: {_describe(e)}")
            task.log.warn(NOT_ABLE)
            return None
        try:
            return parse_supersedes(body)
        except ValueError as e:
            task.log.warn(
                f"[supersede] Not able to interpret response from supersederUrl {url} "
                f"as json list of task IDs: {e}"
            )
            task.log.warn(NOT_ABLE)
            return None

    async def _fetch(self, url: str) -> bytes:
        """GET `url`; retried on connection errors and 5xx. Raises on failure or non-200."""
        session = self.task.services.session
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with session.get(URL(url, encoded=True), timeout=TIMEOUT) as response:
                    if response.status >= 500 and attempt < ATTEMPTS:
                        await asyncio.sleep(0.1 * 2**attempt)
                        continue
                    if response.status != 200:
                        raise aiohttp.ClientResponseError(
                            response.request_info,
                            response.history,
                            status=response.status,
                            message=f"HTTP status {response.status} {response.reason or ''}".strip(),
                        )
                    body = await response.content.read(MAX_RESPONSE + 1)
                    if len(body) > MAX_RESPONSE:
                        raise ValueError(f"response larger than {MAX_RESPONSE} bytes")
                    return body
            except (aiohttp.ClientConnectionError, TimeoutError):
                if attempt == ATTEMPTS:
                    raise
                await asyncio.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")


def superseder_query(url: str, task_id: str) -> str:
    """`url` with `taskId=<task_id>` appended to its query (kept as given otherwise)."""
    parts = urlsplit(url)
    query = f"{parts.query}&taskId={task_id}" if parts.query else f"taskId={task_id}"
    return urlunsplit(parts._replace(query=query))


def parse_supersedes(body: bytes) -> list[str]:
    """The task IDs of a `{"supersedes": [...]}` response; ValueError if it is not that."""
    data = json.loads(body)
    supersedes = data.get("supersedes") if isinstance(data, dict) else None
    if not isinstance(supersedes, list) or not all(isinstance(t, str) for t in supersedes):
        raise ValueError('expected an object with a "supersedes" list of task IDs')
    return supersedes


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")


def _describe(e: BaseException) -> str:
    if isinstance(e, aiohttp.ClientResponseError):
        return e.message
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
