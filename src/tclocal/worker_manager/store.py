"""worker-manager's SQL: worker pools, the workers that registered with them, and their errors.

tc-local has no cloud, so every pool behaves as upstream's `static` provider type whatever its
`providerId`: nothing is ever provisioned. As upstream, a static worker is created with
`createWorker` (its own `providerInfo.staticSecret` and `expires`) and then registers with that
secret. Deleting a pool sets its provider to `null-provider`, as upstream does; its workers stay
until they expire. What has expired (workers past their `expires`, errors after 7 days, deleted
pools without workers) is pruned by the writes below. Every function runs inside one database
transaction and raises `APIError` to roll it back.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from typing import Any

from tclocal.core.errors import APIError
from tclocal.core.timestamps import parse_iso, to_iso

NULL_PROVIDER = "null-provider"
DEFAULT_REREGISTRATION = 96 * 3600.0  # upstream's static provider default
ERROR_RETENTION = 7 * 24 * 3600.0  # upstream's workerPoolErrorRetentionDays
STATES = ("requested", "running", "stopping", "stopped")


def secret_hash(secret: str) -> str:
    """What is stored for a reregistration secret (only ever compared, never shown again)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def prune(conn: sqlite3.Connection, current: float) -> None:
    """Delete expired workers, old errors, and deleted pools that have no workers left."""
    conn.execute("DELETE FROM workers WHERE expires < ?", (current,))
    conn.execute("DELETE FROM worker_pool_errors WHERE reported < ?", (current - ERROR_RETENTION,))
    conn.execute(
        "DELETE FROM worker_pools WHERE provider_id = ? AND NOT EXISTS "
        "(SELECT 1 FROM workers w WHERE w.worker_pool_id = worker_pools.worker_pool_id)",
        (NULL_PROVIDER,),
    )


# --- worker pools -------------------------------------------------------------------------------


def _pool_row(conn: sqlite3.Connection, pool_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM worker_pools WHERE worker_pool_id = ?", (pool_id,)
    ).fetchone()
    return row


def _pool(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    """The worker-pool-full shape, with upstream's counts and capacities by worker state."""
    counts = {state: (0, 0) for state in STATES}
    for r in conn.execute(
        "SELECT state, COUNT(*), SUM(capacity) FROM workers WHERE worker_pool_id = ? GROUP BY state",
        (row["worker_pool_id"],),
    ):
        counts[r[0]] = (r[1], r[2])
    pool: dict[str, Any] = {
        "workerPoolId": row["worker_pool_id"],
        "providerId": row["provider_id"],
        "description": row["description"],
        "created": to_iso(row["created"]),
        "lastModified": to_iso(row["last_modified"]),
        "config": json.loads(row["config"]),
        "owner": row["owner"],
        "emailOnError": bool(row["email_on_error"]),
        "currentCapacity": counts["requested"][1] + counts["running"][1],
    }
    for state, (count, capacity) in counts.items():
        pool[f"{state}Count"] = count
        pool[f"{state}Capacity"] = capacity
    return pool


def get_pool(conn: sqlite3.Connection, pool_id: str) -> dict[str, Any]:
    """A worker pool (404 when there is none)."""
    row = _pool_row(conn, pool_id)
    if row is None:
        raise APIError("ResourceNotFound", "Worker pool does not exist")
    return _pool(conn, row)


def create_pool(
    conn: sqlite3.Connection, pool_id: str, body: dict[str, Any], current: float
) -> dict[str, Any]:
    """Create a worker pool (409 when it exists, even deleted but not yet pruned, as upstream)."""
    prune(conn, current)
    if _pool_row(conn, pool_id) is not None:
        raise APIError("RequestConflict", "Worker pool already exists")
    conn.execute(
        "INSERT INTO worker_pools (worker_pool_id, provider_id, previous_provider_ids, description, "
        "config, owner, email_on_error, created, last_modified) VALUES (?, ?, '[]', '', '{}', '', 0, ?, ?)",
        (pool_id, body["providerId"], current, current),
    )
    return _write_definition(conn, pool_id, body, current)


def _write_definition(
    conn: sqlite3.Connection, pool_id: str, body: dict[str, Any], current: float
) -> dict[str, Any]:
    """Store the user-defined fields of a pool (all but its provider) and return the pool."""
    conn.execute(
        "UPDATE worker_pools SET description = ?, config = ?, owner = ?, email_on_error = ?, "
        "last_modified = ? WHERE worker_pool_id = ?",
        (
            body["description"],
            json.dumps(body["config"]),
            body["owner"],
            int(body["emailOnError"]),
            current,
            pool_id,
        ),
    )
    return get_pool(conn, pool_id)


def _set_provider(conn: sqlite3.Connection, row: sqlite3.Row, provider_id: str) -> None:
    previous: list[str] = json.loads(row["previous_provider_ids"])
    if provider_id != row["provider_id"] and row["provider_id"] not in previous:
        previous.append(row["provider_id"])
    conn.execute(
        "UPDATE worker_pools SET provider_id = ?, previous_provider_ids = ? WHERE worker_pool_id = ?",
        (provider_id, json.dumps(previous), row["worker_pool_id"]),
    )


def update_pool(
    conn: sqlite3.Connection, pool_id: str, body: dict[str, Any], current: float
) -> dict[str, Any]:
    """Replace a pool's definition (404 when it does not exist); `created` is kept."""
    if body.get("workerPoolId", pool_id) != pool_id:
        raise APIError("InputError", "Incorrect workerPoolId in request body")
    row = _pool_row(conn, pool_id)
    if row is None:
        raise APIError("ResourceNotFound", "Worker pool does not exist")
    _set_provider(conn, row, body["providerId"])
    return _write_definition(conn, pool_id, body, current)


def delete_pool(conn: sqlite3.Connection, pool_id: str, current: float) -> dict[str, Any]:
    """Mark a pool deleted (provider `null-provider`); its static workers stay until they expire."""
    row = _pool_row(conn, pool_id)
    if row is None:
        raise APIError("ResourceNotFound", "Worker pool does not exist")
    _set_provider(conn, row, NULL_PROVIDER)
    conn.execute("UPDATE worker_pools SET last_modified = ? WHERE worker_pool_id = ?", (current, pool_id))
    return get_pool(conn, pool_id)


def list_pools(conn: sqlite3.Connection, offset: int, limit: int) -> list[dict[str, Any]]:
    """Worker pools by id, a page at a time."""
    rows = conn.execute(
        "SELECT * FROM worker_pools ORDER BY worker_pool_id LIMIT ? OFFSET ?", (limit, offset)
    ).fetchall()
    return [_pool(conn, r) for r in rows]


# --- workers ------------------------------------------------------------------------------------


def worker_api(row: sqlite3.Row) -> dict[str, Any]:
    """The worker-full shape (`lastChecked` is `created`: a static worker has nothing to check)."""
    return {
        "workerPoolId": row["worker_pool_id"],
        "workerGroup": row["worker_group"],
        "workerId": row["worker_id"],
        "providerId": row["provider_id"],
        "created": to_iso(row["created"]),
        "expires": to_iso(row["expires"]),
        "state": row["state"],
        "capacity": row["capacity"],
        "lastModified": to_iso(row["last_modified"]),
        "lastChecked": to_iso(row["created"]),
    }


def _worker_row(conn: sqlite3.Connection, pool_id: str, group: str, worker_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM workers WHERE worker_pool_id = ? AND worker_group = ? AND worker_id = ?",
        (pool_id, group, worker_id),
    ).fetchone()
    return row


def get_worker(conn: sqlite3.Connection, pool_id: str, group: str, worker_id: str) -> sqlite3.Row:
    """A worker's row (404 when there is none)."""
    row = _worker_row(conn, pool_id, group, worker_id)
    if row is None:
        raise APIError("ResourceNotFound", "Worker not found")
    return row


def _provider_exists(conn: sqlite3.Connection, provider_id: str) -> bool:
    """tc-local's providers: `static`, and any providerId a pool was given (all run as static)."""
    if provider_id == "static":
        return True
    row = conn.execute("SELECT 1 FROM worker_pools WHERE provider_id = ? LIMIT 1", (provider_id,)).fetchone()
    return row is not None


def create_worker(
    conn: sqlite3.Connection, key: tuple[str, str, str], body: dict[str, Any], current: float
) -> dict[str, Any]:
    """Handle `createWorker` as upstream's static provider: idempotent for the same secret."""
    pool_id, group, worker_id = key
    pool = _pool_row(conn, pool_id)
    if pool is None:
        raise APIError("ResourceNotFound", f"Worker pool {pool_id} does not exist")
    expires = parse_iso(body["expires"])
    if expires < current:
        raise APIError("InputError", "worker.expires must be in the future")
    if pool["provider_id"] == NULL_PROVIDER:
        raise APIError("InputError", "not supported for this provider")
    secret = body.get("providerInfo", {}).get("staticSecret")
    if secret is None:
        raise APIError("InputError", "no worker staticSecret provided")
    existing = _worker_row(conn, *key)
    if existing is not None:
        if existing["provider_id"] != pool["provider_id"] or existing["static_secret"] != secret:
            raise APIError("InputError", "worker already exists")
        return worker_api(existing)
    conn.execute(
        "INSERT INTO workers (worker_pool_id, worker_group, worker_id, provider_id, state, capacity, "
        "created, last_modified, expires, secret_hash, terminate_reason, static_secret) "
        "VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, '', NULL, ?)",
        (*key, pool["provider_id"], body.get("capacity", 1), current, current, expires, secret),
    )
    return worker_api(get_worker(conn, *key))


def update_worker(
    conn: sqlite3.Connection, key: tuple[str, str, str], body: dict[str, Any], current: float
) -> dict[str, Any]:
    """Handle `updateWorker`: new expires (past ones too: expire it now), capacity and secret."""
    pool_id, group, worker_id = key
    if _pool_row(conn, pool_id) is None:
        raise APIError("ResourceNotFound", f"Worker pool {pool_id} does not exist")
    if _worker_row(conn, *key) is None:
        raise APIError("ResourceNotFound", f"Worker {pool_id}/{group}/{worker_id} does not exist")
    conn.execute(
        "UPDATE workers SET expires = ?, capacity = ?, static_secret = ?, last_modified = ? "
        "WHERE worker_pool_id = ? AND worker_group = ? AND worker_id = ?",
        (
            parse_iso(body["expires"]),
            body.get("capacity", 1),
            body.get("providerInfo", {}).get("staticSecret"),
            current,
            *key,
        ),
    )
    return worker_api(get_worker(conn, *key))


def _registering_worker(conn: sqlite3.Connection, body: dict[str, Any], current: float) -> sqlite3.Row:
    """The pool's row once a registration passes upstream's checks, in upstream's order."""
    pool_id, provider = body["workerPoolId"], body["providerId"]
    group, worker_id = body["workerGroup"], body["workerId"]
    pool = _pool_row(conn, pool_id)
    if pool is None:
        raise APIError("ResourceNotFound", f"Worker pool {pool_id} does not exist")
    if not _provider_exists(conn, provider):
        raise APIError("ResourceNotFound", f"Provider {provider} does not exist")
    if provider != pool["provider_id"] and provider not in json.loads(pool["previous_provider_ids"]):
        raise APIError("InputError", f"Worker pool {pool_id} not associated with provider {provider}")
    row = _worker_row(conn, pool_id, group, worker_id)
    if row is None:
        raise APIError(
            "ResourceNotFound", f"Worker {group}/{worker_id} in worker pool {pool_id} does not exist"
        )
    if row["expires"] < current:
        raise APIError("InputError", f"Worker {group}/{worker_id} has expired")
    if row["provider_id"] != provider:
        raise APIError("InputError", f"Worker {group}/{worker_id} does not have provider {provider}")
    if row["state"] != "running":
        raise APIError("InputError", "worker is not running")
    given = body["workerIdentityProof"].get("staticSecret")
    if not isinstance(given, str):
        raise APIError("InputError", "missing staticSecret in workerIdentityProof")
    expected = row["static_secret"] or ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise APIError("InputError", "bad staticSecret in workerIdentityProof")
    return pool


def credentials_lifetime(config: dict[str, Any]) -> float:
    """Seconds a worker's credentials last: `config.lifecycle.reregistrationTimeout`, else 96 h."""
    lifecycle = config.get("lifecycle")
    timeout = lifecycle.get("reregistrationTimeout") if isinstance(lifecycle, dict) else None
    return float(timeout) if isinstance(timeout, int) and timeout > 0 else DEFAULT_REREGISTRATION


def register(
    conn: sqlite3.Connection, body: dict[str, Any], secret: str, current: float
) -> tuple[dict[str, Any], float]:
    """Check a registration (the worker's static secret); return the pool's config and the expiry.

    The worker may register again (after a restart) as long as it is running; each time it
    gets a new reregistration secret.
    """
    # No pruning here: an expired worker answers "has expired" until the expiry job removes it.
    pool = _registering_worker(conn, body, current)
    config: dict[str, Any] = json.loads(pool["config"])
    conn.execute(
        "UPDATE workers SET secret_hash = ? WHERE worker_pool_id = ? AND worker_group = ? AND worker_id = ?",
        (secret_hash(secret), body["workerPoolId"], body["workerGroup"], body["workerId"]),
    )
    return config, current + credentials_lifetime(config)


def reregister(
    conn: sqlite3.Connection, body: dict[str, Any], new_secret: str, current: float
) -> tuple[str, float]:
    """Check a reregistration's secret and store the next one; return the providerId and expiry.

    As upstream, a static worker's new credentials last 96 hours whatever the pool's
    `lifecycle` (upstream reads the timeout from provider data a static worker never has).
    """
    pool_id, group, worker_id = body["workerPoolId"], body["workerGroup"], body["workerId"]
    row = _worker_row(conn, pool_id, group, worker_id)
    if (
        row is None
        or not row["secret_hash"]
        or not hmac.compare_digest(row["secret_hash"], secret_hash(body["secret"]))
    ):
        raise APIError("InputError", "Could not generate credentials for this secret")
    if row["state"] != "running":
        raise APIError("InputError", f"Worker {group}/{worker_id} is not running")
    if row["expires"] < current:
        raise APIError("InputError", f"Worker {group}/{worker_id} has expired")
    conn.execute(
        "UPDATE workers SET secret_hash = ? WHERE worker_pool_id = ? AND worker_group = ? AND worker_id = ?",
        (secret_hash(new_secret), pool_id, group, worker_id),
    )
    return row["provider_id"], current + DEFAULT_REREGISTRATION


def list_workers(
    conn: sqlite3.Connection, pool_id: str, group: str | None, state: str | None, offset: int, limit: int
) -> list[dict[str, Any]]:
    """A pool's workers (optionally of one group, in one state), by group and id, a page at a time.

    Listing a whole pool that does not exist is a 404; listing a group of it is not (as upstream).
    """
    if group is None:
        get_pool(conn, pool_id)
    rows = conn.execute(
        "SELECT * FROM workers WHERE worker_pool_id = ? AND (? IS NULL OR worker_group = ?) "
        "AND (? IS NULL OR state = ?) ORDER BY worker_group, worker_id LIMIT ? OFFSET ?",
        (pool_id, group, group, state, state, limit, offset),
    ).fetchall()
    return [worker_api(r) for r in rows]


def remove_worker(conn: sqlite3.Connection, pool_id: str, group: str, worker_id: str, current: float) -> None:
    """Mark a worker `stopped`, as upstream's static provider does; it cannot register again.

    (tc-local's shouldWorkerTerminate then answers true, see `should_terminate`.)
    """
    row = get_worker(conn, pool_id, group, worker_id)
    if row["state"] in ("stopping", "stopped"):
        return
    conn.execute(
        "UPDATE workers SET state = 'stopped', last_modified = ?, terminate_reason = ? "
        "WHERE worker_pool_id = ? AND worker_group = ? AND worker_id = ?",
        (current, "worker was removed (workerManager.removeWorker)", pool_id, group, worker_id),
    )


def should_terminate(conn: sqlite3.Connection, pool_id: str, group: str, worker_id: str) -> dict[str, Any]:
    """`{terminate, reason}`: true once the worker was removed or its pool deleted.

    A deliberate difference: upstream's static provider never asks a worker to terminate (only
    its worker scanner decides that, for cloud pools over capacity). tc-local answers true for a
    removed worker or a deleted pool, so that a worker's reaction can be tested without a cloud.
    """
    row = get_worker(conn, pool_id, group, worker_id)
    if row["state"] != "running":
        return {"terminate": True, "reason": row["terminate_reason"] or f"worker is {row['state']}"}
    pool = _pool_row(conn, pool_id)
    if pool is None or pool["provider_id"] == NULL_PROVIDER:
        return {"terminate": True, "reason": f"worker pool {pool_id} was deleted"}
    return {"terminate": False, "reason": "none"}


# --- errors -------------------------------------------------------------------------------------


def _error(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "errorId": row["error_id"],
        "workerPoolId": row["worker_pool_id"],
        "reported": to_iso(row["reported"]),
        "kind": row["kind"],
        "title": row["title"],
        "description": row["description"],
        "extra": json.loads(row["extra"]),
    }


def report_error(
    conn: sqlite3.Connection, pool_id: str, error_id: str, body: dict[str, Any], current: float
) -> dict[str, Any]:
    """Record a worker's error report (with its workerGroup/workerId added to `extra`)."""
    prune(conn, current)
    get_pool(conn, pool_id)
    extra = {**body["extra"], "workerGroup": body["workerGroup"], "workerId": body["workerId"]}
    conn.execute(
        "INSERT INTO worker_pool_errors (error_id, worker_pool_id, reported, kind, title, description, "
        "extra) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (error_id, pool_id, current, body["kind"], body["title"], body["description"], json.dumps(extra)),
    )
    row = conn.execute("SELECT * FROM worker_pool_errors WHERE error_id = ?", (error_id,)).fetchone()
    return _error(row)


def list_errors(
    conn: sqlite3.Connection, pool_id: str, error_id: str | None, offset: int, limit: int
) -> list[dict[str, Any]]:
    """A pool's errors, newest first (or just the one with `error_id`)."""
    rows = conn.execute(
        "SELECT * FROM worker_pool_errors WHERE worker_pool_id = ? AND (? IS NULL OR error_id = ?) "
        "ORDER BY reported DESC, error_id LIMIT ? OFFSET ?",
        (pool_id, error_id, error_id, limit, offset),
    ).fetchall()
    return [_error(r) for r in rows]
