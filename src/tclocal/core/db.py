"""SQLite state on one dedicated thread: every query runs there, one transaction per call.

Why one thread: SQLite allows one writer at a time anyway, and serialising every transaction
through a single connection makes each call atomic with respect to all others (two claimers
can never take the same run) without locks or retries. The event loop never touches SQLite;
it awaits the thread's futures. WAL mode keeps commits cheap (no fsync per commit with
`synchronous=NORMAL`) and lets a restart find everything that was committed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    task_queue_id TEXT NOT NULL,
    scheduler_id TEXT NOT NULL,
    task_group_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    priority INTEGER NOT NULL,
    deadline REAL NOT NULL,
    expires REAL NOT NULL,
    retries_left INTEGER NOT NULL,
    state TEXT NOT NULL,
    taken_until REAL,
    definition TEXT NOT NULL,
    runs TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_pending ON tasks (task_queue_id, priority DESC)
    WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS tasks_claimed ON tasks (taken_until) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS tasks_open ON tasks (deadline)
    WHERE state IN ('unscheduled', 'pending', 'running');
CREATE INDEX IF NOT EXISTS tasks_group ON tasks (task_group_id);
CREATE INDEX IF NOT EXISTS tasks_queue ON tasks (task_queue_id, state);

CREATE TABLE IF NOT EXISTS task_groups (
    task_group_id TEXT PRIMARY KEY,
    scheduler_id TEXT NOT NULL,
    expires REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS dependencies (
    required_task_id TEXT NOT NULL,
    dependent_task_id TEXT NOT NULL,
    requires TEXT NOT NULL,
    satisfied INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (required_task_id, dependent_task_id)
);
CREATE INDEX IF NOT EXISTS dependencies_blocking ON dependencies (dependent_task_id, satisfied);

CREATE TABLE IF NOT EXISTS artifacts (
    task_id TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    storage_type TEXT NOT NULL,
    content_type TEXT NOT NULL,
    content_length INTEGER,
    expires REAL NOT NULL,
    present INTEGER NOT NULL,
    details TEXT NOT NULL,
    PRIMARY KEY (task_id, run_id, name)
);

CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY,
    record TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS roles (
    role_id TEXT PRIMARY KEY,
    record TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    expires REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS purge_requests (
    worker_pool_id TEXT NOT NULL,
    cache_name TEXT NOT NULL,
    before REAL NOT NULL,
    PRIMARY KEY (worker_pool_id, cache_name)
);

CREATE TABLE IF NOT EXISTS index_entries (
    namespace TEXT PRIMARY KEY,
    parent TEXT NOT NULL,
    task_id TEXT NOT NULL,
    rank REAL NOT NULL,
    data TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS index_entries_parent ON index_entries (parent, namespace);

CREATE TABLE IF NOT EXISTS objects (
    name TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    upload_id TEXT,
    expires REAL NOT NULL,
    hashes TEXT NOT NULL,
    finished INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS worker_pools (
    worker_pool_id TEXT PRIMARY KEY,
    provider_id TEXT NOT NULL,
    previous_provider_ids TEXT NOT NULL,
    description TEXT NOT NULL,
    config TEXT NOT NULL,
    owner TEXT NOT NULL,
    email_on_error INTEGER NOT NULL,
    created REAL NOT NULL,
    last_modified REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS workers (
    worker_pool_id TEXT NOT NULL,
    worker_group TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    state TEXT NOT NULL,
    capacity INTEGER NOT NULL,
    created REAL NOT NULL,
    last_modified REAL NOT NULL,
    expires REAL NOT NULL,
    secret_hash TEXT NOT NULL,
    terminate_reason TEXT,
    static_secret TEXT,
    PRIMARY KEY (worker_pool_id, worker_group, worker_id)
);
CREATE INDEX IF NOT EXISTS workers_expires ON workers (expires);

CREATE TABLE IF NOT EXISTS worker_pool_errors (
    error_id TEXT PRIMARY KEY,
    worker_pool_id TEXT NOT NULL,
    reported REAL NOT NULL,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    extra TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS worker_pool_errors_pool ON worker_pool_errors (worker_pool_id, reported);
"""


# Columns added after a table was first created: (table, column, declaration).
ADDED_COLUMNS = [("workers", "static_secret", "TEXT")]


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Bring a data directory made by an earlier tc-local up to the current tables."""
    for table, column, declaration in ADDED_COLUMNS:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


class Database:
    """The one SQLite connection, owned by its own thread; `run` executes a transaction there."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(SCHEMA)
        _add_missing_columns(conn)
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        self._conn = conn

    async def open(self) -> None:
        """Start the database thread and create the schema if the file is new."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tclocal-db")
        await asyncio.get_running_loop().run_in_executor(self._executor, self._connect)

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise RuntimeError("database is not open")
        conn.execute("BEGIN")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` in one transaction on the database thread and return its result.

        An exception inside `fn` rolls the transaction back and propagates to the caller.
        """
        if self._executor is None:
            raise RuntimeError("database is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transaction, fn)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        """Checkpoint, close the connection and stop the thread."""
        if self._executor is None:
            return
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)
        self._executor = None
