"""The purge-cache service: requests to purge a named cache on every worker of a pool."""

from __future__ import annotations

import sqlite3
from typing import Any

from tclocal.context import Context
from tclocal.core.endpoints import Call, Endpoint, Reply, health_endpoints, page_args
from tclocal.core.errors import APIError
from tclocal.core.timestamps import now, parse_iso, to_iso
from tclocal.core.validation import Validator, ecma_regex, obj

PURGE_CACHE = Validator(obj(["cacheName"], cacheName={"type": "string", "minLength": 1, "maxLength": 255}))
WORKER_POOL = r"^[A-Za-z0-9_-]{1,38}/[A-Za-z0-9_-]{1,38}$"


def _request(row: sqlite3.Row) -> dict[str, Any]:
    provisioner, _, worker_type = row["worker_pool_id"].partition("/")
    return {
        "provisionerId": provisioner,
        "workerType": worker_type,
        "cacheName": row["cache_name"],
        "before": to_iso(row["before"]),
    }


def _check_pool(pool: str) -> None:
    if not ecma_regex(WORKER_POOL).search(pool):
        raise APIError("InvalidRequestArguments", f"workerPoolId must match {WORKER_POOL}")


class PurgeCacheService:
    """Handlers for the purge-cache service."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def purge_cache(self, call: Call) -> Reply:
        """Handle `purgeCache`: ask workers of a pool to drop caches created before now."""
        pool, name = call.params["workerPoolId"], call.body["cacheName"]
        _check_pool(pool)
        call.authorize(workerPoolId=pool, cacheName=name)
        current = now()
        await self.ctx.db.run(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO purge_requests (worker_pool_id, cache_name, before) VALUES (?, ?, ?)",
                (pool, name, current),
            )
        )
        return None

    async def all_purge_requests(self, call: Call) -> Reply:
        """Handle `allPurgeRequests`."""
        after, limit = page_args(call)
        offset = int(after) if after.isdigit() else 0
        rows = await self.ctx.db.run(
            lambda c: c.execute(
                "SELECT * FROM purge_requests ORDER BY worker_pool_id, cache_name LIMIT ? OFFSET ?",
                (limit + 1, offset),
            ).fetchall()
        )
        result: dict[str, Any] = {"requests": [_request(r) for r in rows[:limit]]}
        if len(rows) > limit:
            result["continuationToken"] = str(offset + limit)
        return result

    async def purge_requests(self, call: Call) -> Reply:
        """Handle `purgeRequests`: the pool's requests made at or after `since`."""
        pool = call.params["workerPoolId"]
        _check_pool(pool)
        try:
            since = parse_iso(call.query["since"]) if "since" in call.query else 0.0
        except ValueError as err:
            raise APIError("InvalidRequestArguments", "`since` is not a valid date") from err
        rows = await self.ctx.db.run(
            lambda c: c.execute(
                "SELECT * FROM purge_requests WHERE worker_pool_id = ? AND before >= ? ORDER BY cache_name",
                (pool, since),
            ).fetchall()
        )
        return {"requests": [_request(r) for r in rows]}

    def endpoints(self) -> list[Endpoint]:
        """The endpoint table (`/purge-cache/list` is declared before the pool routes)."""
        return [
            *health_endpoints(),
            Endpoint(
                "allPurgeRequests",
                "GET",
                "/purge-cache/list",
                self.all_purge_requests,
                "purge-cache:all-purge-requests",
                query=("continuationToken", "limit"),
            ),
            Endpoint(
                "purgeCache",
                "POST",
                "/purge-cache/<*workerPoolId>",
                self.purge_cache,
                "purge-cache:<workerPoolId>:<cacheName>",
                PURGE_CACHE,
            ),
            Endpoint(
                "purgeRequests",
                "GET",
                "/purge-cache/<*workerPoolId>",
                self.purge_requests,
                "purge-cache:purge-requests::<workerPoolId>",
                query=("since",),
            ),
        ]
