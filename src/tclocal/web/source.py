"""What the web view reads from tc-local: the ONE module of the web view importing tc-local's own.

Everything is read through tc-local's `Context` (its database thread and blob store) and its
queue model, in read-only transactions; the web view never writes. When tc-local's modules
move, only the imports below change.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tclocal.context import Context as Context
from tclocal.object import store as object_store
from tclocal.queue.artifacts_api import blob_key, object_name
from tclocal.queue.model import TaskRecord

RESOLVED = ("completed", "failed", "exception")
STATES = ("unscheduled", "pending", "running", "completed", "failed", "exception")
MAX_LINKS = 10
"""Most links followed from one artifact name (the queue refuses cycles; this bounds chains)."""


@dataclass(frozen=True)
class TaskSummary:
    """One row of a task list."""

    task_id: str
    name: str
    state: str
    task_queue_id: str
    task_group_id: str
    duration: str


@dataclass(frozen=True)
class GroupSummary:
    """One task group: how many of its tasks are in each state."""

    task_group_id: str
    counts: dict[str, int]


@dataclass(frozen=True)
class LogSource:
    """Where a log artifact's bytes are: a live stream (`url`), a stored blob (`path`), or neither."""

    kind: str  # "live" | "blob" | "error" | "none"
    url: str = ""
    path: Path | None = None
    gzip: bool = False
    message: str = ""


def _parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def duration(runs: list[dict[str, Any]]) -> str:
    """From the first run's start to the last run's resolution (or '' while none started)."""
    started = [r["started"] for r in runs if r.get("started")]
    if not started:
        return ""
    last = runs[-1]
    if not last.get("resolved"):
        return "running"
    seconds = (_parse(last["resolved"]) - _parse(started[0])).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _summary(row: sqlite3.Row) -> TaskSummary:
    record = TaskRecord.from_row(row)
    name = str(record.definition.get("metadata", {}).get("name", ""))
    return TaskSummary(
        record.task_id,
        name,
        record.state,
        row["task_queue_id"],
        row["task_group_id"],
        duration(record.runs),
    )


async def recent_tasks(ctx: Context, state: str, worker_type: str, limit: int = 100) -> list[TaskSummary]:
    """Newest tasks first (creation order), optionally only one state and/or worker type."""
    where, args = [], []
    if state:
        where.append("state = ?")
        args.append(state)
    if worker_type:
        where.append("substr(task_queue_id, instr(task_queue_id, '/') + 1) = ?")
        args.append(worker_type)
    sql = "SELECT * FROM tasks" + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY rowid DESC LIMIT ?"

    def read(conn: sqlite3.Connection) -> list[TaskSummary]:
        return [_summary(row) for row in conn.execute(sql, (*args, limit))]

    return await ctx.db.run(read)


async def recent_groups(ctx: Context, limit: int = 20) -> list[GroupSummary]:
    """The task groups with the newest tasks, newest first, with their tasks' states counted."""

    def read(conn: sqlite3.Connection) -> list[GroupSummary]:
        groups = conn.execute(
            "SELECT task_group_id FROM tasks GROUP BY task_group_id ORDER BY max(rowid) DESC LIMIT ?",
            (limit,),
        ).fetchall()
        result = []
        for (group,) in groups:
            rows = conn.execute(
                "SELECT state, count(*) FROM tasks WHERE task_group_id = ? GROUP BY state", (group,)
            )
            result.append(GroupSummary(group, {state: n for state, n in rows}))
        return result

    return await ctx.db.run(read)


async def worker_types(ctx: Context) -> list[str]:
    """Every worker type that has tasks (for the filter)."""

    def read(conn: sqlite3.Connection) -> list[str]:
        rows = conn.execute("SELECT DISTINCT task_queue_id FROM tasks ORDER BY task_queue_id")
        return sorted({str(r[0]).split("/", 1)[-1] for r in rows})

    return await ctx.db.run(read)


async def group_tasks(ctx: Context, group_id: str) -> list[TaskSummary]:
    """The group's tasks in creation order."""

    def read(conn: sqlite3.Connection) -> list[TaskSummary]:
        rows = conn.execute("SELECT * FROM tasks WHERE task_group_id = ? ORDER BY rowid", (group_id,))
        return [_summary(row) for row in rows]

    return await ctx.db.run(read)


async def task(ctx: Context, task_id: str) -> TaskRecord | None:
    """The task (definition, runs), or None."""

    def read(conn: sqlite3.Connection) -> TaskRecord | None:
        row = conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        return TaskRecord.from_row(row) if row else None

    return await ctx.db.run(read)


async def artifacts(ctx: Context, task_id: str, run_id: int) -> list[dict[str, Any]]:
    """The run's present artifacts: name, storageType, contentType, and the link target if any."""

    def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
        rows = conn.execute(
            "SELECT name, storage_type, content_type, details FROM artifacts"
            " WHERE task_id = ? AND run_id = ? AND present = 1 ORDER BY name",
            (task_id, run_id),
        )
        return [
            {
                "name": r["name"],
                "storageType": r["storage_type"],
                "contentType": r["content_type"],
                "details": json.loads(r["details"]),
            }
            for r in rows
        ]

    return await ctx.db.run(read)


def _row(conn: sqlite3.Connection, task_id: str, run_id: int, name: str) -> sqlite3.Row | None:
    for _ in range(MAX_LINKS):
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM artifacts WHERE task_id = ? AND run_id = ? AND name = ? AND present = 1",
            (task_id, run_id, name),
        ).fetchone()
        if row is None or row["storage_type"] != "link":
            return row
        name = json.loads(row["details"])["artifact"]
    return None


async def log_source(ctx: Context, task_id: str, run_id: int, name: str) -> LogSource:
    """Where to read the log artifact `name` of a run (following links)."""
    row = await ctx.db.run(lambda conn: _row(conn, task_id, run_id, name))
    if row is None:
        return LogSource("none")
    kind, details = row["storage_type"], json.loads(row["details"])
    if kind == "reference":
        return LogSource("live", url=str(details.get("url", "")))
    if kind == "error":
        return LogSource("error", message=str(details.get("message", "")))
    if kind == "s3":
        key = blob_key(task_id, run_id, row["name"])
    else:
        key = object_store.blob_key(object_name(task_id, run_id, row["name"]))
    meta = await ctx.blobs.metadata(key)
    if meta is None:
        return LogSource("none")
    return LogSource("blob", path=Path(meta["path"]), gzip=meta.get("contentEncoding") == "gzip")
