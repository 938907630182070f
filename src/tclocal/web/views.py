"""The web view's pages: aiohttp handlers rendering the package's Jinja2 templates."""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jinja2
import yaml
from aiohttp import web

from tclocal.web import source
from tclocal.web.logs import blob_lines, live_lines
from tclocal.web.source import Context

HERE = Path(__file__).parent
STATIC_PREFIX = "/web/static"
SECURITY_HEADERS = {
    # No inline script or style at all: even a `<script>` that slipped through could not run.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def quote_name(name: str) -> str:
    """An artifact name in a URL path (slashes kept, as the Taskcluster UI and API write them)."""
    return urllib.parse.quote(name, safe="/")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        enable_async=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["qname"] = quote_name
    env.globals["static"] = STATIC_PREFIX
    return env


def _is_log(artifact: dict[str, Any]) -> bool:
    return str(artifact["name"]).endswith(".log") or str(artifact["contentType"]).startswith("text/plain")


class WebView:
    """The routes of the web view over one tc-local's state."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.env = _environment()
        self._session: aiohttp.ClientSession | None = None

    def routes(self) -> list[web.AbstractRouteDef]:
        """Every page and the static assets (the index is served by `/` through `index`)."""
        return [
            web.get("/tasks/groups/{taskGroupId}", self.group),
            web.get("/tasks/{taskId}", self.task),
            web.get("/tasks/{taskId}/runs/{runId}/logs/{name:.+}", self.log),
            web.get("/web/follow/{taskId}/{runId}/{name:.+}", self.follow),
            web.static(STATIC_PREFIX, HERE / "static", append_version=False),
        ]

    async def close(self) -> None:
        """Close the HTTP session used to follow live logs."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _page(self, template: str, http_status: int = 200, **context: Any) -> web.Response:
        body = await self.env.get_template(template).render_async(**context)
        return web.Response(
            text=body, status=http_status, content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS
        )

    async def _not_found(self, what: str) -> web.Response:
        return await self._page("not_found.html", http_status=404, title="Not found", what=what)

    async def index(self, request: web.Request) -> web.StreamResponse:
        """`/`: recent task groups and tasks, newest first, filtered by state and worker type."""
        state = request.query.get("state", "")
        worker_type = request.query.get("workerType", "")
        if state not in source.STATES:
            state = ""
        return await self._page(
            "index.html",
            title="Tasks",
            tasks=await source.recent_tasks(self.ctx, state, worker_type),
            groups=await source.recent_groups(self.ctx),
            states=source.STATES,
            worker_types=await source.worker_types(self.ctx),
            state=state,
            worker_type=worker_type,
        )

    async def group(self, request: web.Request) -> web.StreamResponse:
        """`/tasks/groups/<taskGroupId>`: the group's tasks with state and duration."""
        group_id = request.match_info["taskGroupId"]
        tasks = await source.group_tasks(self.ctx, group_id)
        if not tasks:
            return await self._not_found(f"task group {group_id}")
        return await self._page("group.html", title=f"Task group {group_id}", group_id=group_id, tasks=tasks)

    async def task(self, request: web.Request) -> web.StreamResponse:
        """`/tasks/<taskId>`: status, runs, artifacts, dependencies and the definition."""
        task_id = request.match_info["taskId"]
        record = await source.task(self.ctx, task_id)
        if record is None:
            return await self._not_found(f"task {task_id}")
        runs = []
        for run in record.runs:
            listed = await source.artifacts(self.ctx, task_id, int(run["runId"]))
            runs.append({**run, "artifacts": listed, "logs": [a for a in listed if _is_log(a)]})
        definition = record.definition
        return await self._page(
            "task.html",
            title=str(definition.get("metadata", {}).get("name") or task_id),
            task_id=task_id,
            definition=definition,
            status=record.status(),
            runs=runs,
            duration=source.duration(record.runs),
            yaml_text=yaml.safe_dump(definition, sort_keys=False, allow_unicode=True, width=100),
        )

    async def _run(self, request: web.Request) -> tuple[str, int, str, Any] | None:
        task_id, name = request.match_info["taskId"], request.match_info["name"]
        record = await source.task(self.ctx, task_id)
        try:
            run_id = int(request.match_info["runId"])
        except ValueError:
            return None
        if record is None or not 0 <= run_id < len(record.runs):
            return None
        return task_id, run_id, name, record

    async def log(self, request: web.Request) -> web.StreamResponse:
        """A log: the stored one rendered as it is read, or (running) a page that follows it live."""
        found = await self._run(request)
        if found is None:
            return await self._not_found("log")
        task_id, run_id, name, record = found
        where = await source.log_source(self.ctx, task_id, run_id, name)
        if where.kind == "none":
            return await self._not_found(f"log {name} of run {run_id} of task {task_id}")
        lines: AsyncIterator[str] | None = None
        if where.kind == "blob" and where.path is not None:
            lines = blob_lines(where.path, where.gzip)
        context = {
            "title": f"{name} - {record.definition.get('metadata', {}).get('name', task_id)}",
            "task_id": task_id,
            "run_id": run_id,
            "name": name,
            "run": record.runs[run_id],
            "source": where,
            "lines": lines,
        }
        response = web.StreamResponse(
            headers={**SECURITY_HEADERS, "Content-Type": "text/html; charset=utf-8"}
        )
        await response.prepare(request)
        # Streamed as it renders: a large log never sits in memory.
        async for chunk in self.env.get_template("log.html").generate_async(**context):
            await response.write(chunk.encode())
        await response.write_eof()
        return response

    async def follow(self, request: web.Request) -> web.StreamResponse:
        """The live log of a running task as rendered lines, one per line, as the worker writes them.

        Served as text/plain: the lines are already escaped HTML for the page's script to insert,
        and opened on their own they show as text.
        """
        found = await self._run(request)
        if found is None:
            raise web.HTTPNotFound(text="no such run")
        task_id, run_id, name, record = found
        where = await source.log_source(self.ctx, task_id, run_id, name)
        # Only a running run's reference is followed: tc-local fetches that URL itself.
        live = where.kind == "live" and record.runs[run_id]["state"] == "running"
        if not live or urllib.parse.urlsplit(where.url).scheme not in ("http", "https"):
            raise web.HTTPNotFound(text="no live log to follow")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        response = web.StreamResponse(
            headers={
                **SECURITY_HEADERS,
                "Content-Type": "text/plain; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        try:
            async for line in live_lines(self._session, where.url):
                await response.write(line.encode())
        except aiohttp.ClientError:
            pass  # the worker went away: the page says the stream ended and offers a reload
        await response.write_eof()
        return response
