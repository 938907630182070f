"""The index's SQL: entries keyed by dotted namespace, with upstream's rank rule.

An entry `a.b.c` lives in namespace `a.b` under the name `c`; namespaces exist implicitly as
prefixes of entries. Inserting over an entry of *higher* rank keeps the old one (equal or
lower rank is replaced), as upstream's index does.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from tclocal.core.timestamps import now, parse_iso, to_iso


def _parent(namespace: str) -> str:
    return namespace.rpartition(".")[0]


def _entry(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "namespace": row["namespace"],
        "taskId": row["task_id"],
        "rank": row["rank"],
        "data": json.loads(row["data"]),
        "expires": to_iso(row["expires"]),
    }


def find(conn: sqlite3.Connection, namespace: str) -> dict[str, Any] | None:
    """The live entry at `namespace`, if any."""
    row = conn.execute(
        "SELECT * FROM index_entries WHERE namespace = ? AND expires > ?", (namespace, now())
    ).fetchone()
    return _entry(row) if row else None


def insert(
    conn: sqlite3.Connection, namespace: str, task_id: str, rank: float, data: dict[str, Any], expires: float
) -> dict[str, Any]:
    """Index a task at `namespace` unless a live entry of higher rank is there; return the entry."""
    current = find(conn, namespace)
    if current is not None and current["rank"] > rank:
        return current
    conn.execute(
        "INSERT OR REPLACE INTO index_entries (namespace, parent, task_id, rank, data, expires) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (namespace, _parent(namespace), task_id, rank, json.dumps(data), expires),
    )
    found = find(conn, namespace)
    assert found is not None
    return found


def delete(conn: sqlite3.Connection, namespace: str) -> None:
    """Remove the entry at `namespace` (no error when absent)."""
    conn.execute("DELETE FROM index_entries WHERE namespace = ?", (namespace,))


def list_tasks(conn: sqlite3.Connection, namespace: str, after: str, limit: int) -> list[dict[str, Any]]:
    """Live entries directly in `namespace`, ordered by name, after the continuation point."""
    rows = conn.execute(
        "SELECT * FROM index_entries WHERE parent = ? AND namespace > ? AND expires > ? "
        "ORDER BY namespace LIMIT ?",
        (namespace, after, now(), limit),
    ).fetchall()
    return [_entry(r) for r in rows]


def list_namespaces(conn: sqlite3.Connection, namespace: str) -> list[dict[str, Any]]:
    """Child namespaces of `namespace` (prefixes of deeper entries), with their latest expiry."""
    prefix = f"{namespace}." if namespace else ""
    rows = conn.execute(
        "SELECT namespace, expires FROM index_entries WHERE namespace LIKE ? ESCAPE '\\' AND expires > ?",
        (prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%", now()),
    ).fetchall()
    children: dict[str, float] = {}
    for row in rows:
        rest = row["namespace"][len(prefix) :]
        if "." not in rest:
            continue
        name = rest.split(".", 1)[0]
        children[name] = max(children.get(name, 0.0), row["expires"])
    return [
        {"namespace": prefix + name, "name": name, "expires": to_iso(children[name])}
        for name in sorted(children)
    ]


def index_completed_task(conn: sqlite3.Connection, task_id: str, definition: dict[str, Any]) -> None:
    """Index a completed task under each of its `index.<namespace>` routes.

    Rank, data and expiry come from `task.extra.index` when given, as upstream's index service
    reads them; otherwise rank 0, no data and the task's own expiry.
    """
    extra = definition.get("extra", {}).get("index", {})
    extra = extra if isinstance(extra, dict) else {}
    rank = extra.get("rank", 0)
    rank = rank if isinstance(rank, int | float) and not isinstance(rank, bool) else 0
    data = extra.get("data", {})
    data = data if isinstance(data, dict) else {}
    try:
        expires = parse_iso(extra["expires"]) if isinstance(extra.get("expires"), str) else None
    except ValueError:
        expires = None
    expires = expires if expires is not None else parse_iso(definition["expires"])
    for route in definition.get("routes", []):
        if route.startswith("index.") and len(route) > len("index."):
            insert(conn, route[len("index.") :], task_id, rank, data, expires)
