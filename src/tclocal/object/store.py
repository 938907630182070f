"""The object service's SQL: an object is reserved by an uploadId, then finished with hashes.

The queue reserves ("locks") the object behind an `object` artifact when the artifact is
created, so only the worker holding that uploadId can upload it.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from tclocal.core.errors import APIError


def blob_key(name: str) -> str:
    """The blob-store key of an object's body."""
    return f"objects/{name}"


def get(conn: sqlite3.Connection, name: str) -> sqlite3.Row | None:
    """The object row, if any."""
    row: sqlite3.Row | None = conn.execute("SELECT * FROM objects WHERE name = ?", (name,)).fetchone()
    return row


def is_finished(conn: sqlite3.Connection, name: str) -> bool:
    """True once finishUpload has completed for the object."""
    row = get(conn, name)
    return bool(row and row["finished"])


def lock_upload(conn: sqlite3.Connection, name: str, project_id: str, upload_id: str, expires: float) -> None:
    """Reserve an object for an upload (createUpload without methods); idempotent per uploadId."""
    row = get(conn, name)
    if row is not None:
        if row["upload_id"] != upload_id or row["project_id"] != project_id or row["finished"]:
            raise APIError("RequestConflict", "Object already exists", name=name, projectId=project_id)
        conn.execute("UPDATE objects SET expires = ? WHERE name = ?", (expires, name))
        return
    conn.execute(
        "INSERT INTO objects (name, project_id, upload_id, expires, hashes, finished) "
        "VALUES (?, ?, ?, ?, '{}', 0)",
        (name, project_id, upload_id, expires),
    )


def _merge_hashes(conn: sqlite3.Connection, row: sqlite3.Row, hashes: dict[str, str]) -> None:
    existing: dict[str, str] = json.loads(row["hashes"])
    for algorithm, value in hashes.items():
        if existing.get(algorithm, value) != value:
            raise APIError("RequestConflict", "Content hash already exists with a different value")
    conn.execute(
        "UPDATE objects SET hashes = ? WHERE name = ?", (json.dumps({**existing, **hashes}), row["name"])
    )


def create_upload(
    conn: sqlite3.Connection,
    name: str,
    project_id: str,
    upload_id: str,
    expires: float,
    hashes: dict[str, str],
) -> None:
    """Record a createUpload: reserve the object and merge the proposed hashes."""
    lock_upload(conn, name, project_id, upload_id, expires)
    row = get(conn, name)
    assert row is not None
    _merge_hashes(conn, row, hashes)


def finish_upload(
    conn: sqlite3.Connection, name: str, project_id: str, upload_id: str, hashes: dict[str, str]
) -> None:
    """Handle `finishUpload`: mark the object complete (idempotent once finished, if hashes agree)."""
    row = get(conn, name)
    if row is None:
        raise APIError("ResourceNotFound", f'Object "{name}" not found')
    if row["project_id"] != project_id:
        raise APIError("InputError", f'Object "{name}" does not have projectId {project_id}')
    if row["finished"]:
        existing = json.loads(row["hashes"])
        for algorithm, value in hashes.items():
            if existing.get(algorithm) != value:
                raise APIError(
                    "RequestConflict", f"Object hash {algorithm} differs or is new after finishing"
                )
        return
    if row["upload_id"] != upload_id:
        raise APIError("RequestConflict", f'Object "{name}" does not have uploadId {upload_id}')
    _merge_hashes(conn, row, hashes)
    conn.execute("UPDATE objects SET finished = 1, upload_id = NULL WHERE name = ?", (name,))


def finished_or_404(conn: sqlite3.Connection, name: str) -> dict[str, Any]:
    """A finished object's metadata, or ResourceNotFound."""
    row = get(conn, name)
    if row is None or not row["finished"]:
        raise APIError("ResourceNotFound", f'Object "{name}" not found')
    return {"projectId": row["project_id"], "expires": row["expires"], "hashes": json.loads(row["hashes"])}
