"""Deleting what has expired, as upstream's expiry jobs do.

Tasks (with their runs and dependencies), artifacts and their blobs, objects, secrets, index
entries, purge requests older than a day, and worker-manager's expired workers and old errors.
"""

from __future__ import annotations

import sqlite3

from tclocal.object import store as object_store
from tclocal.queue.artifacts_api import blob_key, object_name
from tclocal.worker_manager import store as worker_manager_store

PURGE_REQUEST_LIFETIME = 24 * 3600.0


def expire(conn: sqlite3.Connection, current: float) -> list[str]:
    """Delete every expired row; return the blob keys whose bodies must be deleted too."""
    keys: list[str] = []
    for row in conn.execute(
        "SELECT task_id, run_id, name, storage_type FROM artifacts WHERE expires < ?", (current,)
    ):
        if row["storage_type"] == "s3":
            keys.append(blob_key(row["task_id"], row["run_id"], row["name"]))
        elif row["storage_type"] == "object":
            name = object_name(row["task_id"], row["run_id"], row["name"])
            conn.execute("DELETE FROM objects WHERE name = ?", (name,))
            keys.append(object_store.blob_key(name))
    conn.execute("DELETE FROM artifacts WHERE expires < ?", (current,))
    for row in conn.execute("SELECT name FROM objects WHERE expires < ?", (current,)):
        keys.append(object_store.blob_key(row["name"]))
    conn.execute("DELETE FROM objects WHERE expires < ?", (current,))
    for column in ("dependent_task_id", "required_task_id"):
        conn.execute(
            f"DELETE FROM dependencies WHERE {column} IN (SELECT task_id FROM tasks WHERE expires < ?)",
            (current,),
        )
    conn.execute("DELETE FROM tasks WHERE expires < ?", (current,))
    conn.execute("DELETE FROM task_groups WHERE expires < ?", (current,))
    conn.execute("DELETE FROM secrets WHERE expires < ?", (current,))
    conn.execute("DELETE FROM index_entries WHERE expires < ?", (current,))
    conn.execute("DELETE FROM purge_requests WHERE before < ?", (current - PURGE_REQUEST_LIFETIME,))
    worker_manager_store.prune(conn, current)
    return keys
