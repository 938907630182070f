"""The worker-manager service: worker pools, worker registration and lifecycle, worker errors.

Enough of upstream's worker-manager for worker-runner's `static` provider and the worker's
`--with-worker-runner` mode. Every pool behaves as a static pool (see `worker_manager_store`):
a worker registers with the pool's `config.staticSecret` and gets temporary credentials
issued like the queue's task credentials, for the scopes upstream's `createCredentials` grants.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import Any, TypeAlias

import slugid

from tclocal.context import Context
from tclocal.core.endpoints import Call, Endpoint, Reply, health_endpoints, page_args
from tclocal.core.errors import OMITTED, APIError
from tclocal.core.timestamps import now, to_iso
from tclocal.worker_manager import store
from tclocal.worker_manager.schemas import (
    CREATE_WORKER,
    CREATE_WORKER_POOL,
    POOL_CONFIG,
    REGISTER_WORKER,
    REPORT_WORKER_ERROR,
    REREGISTER_WORKER,
    STATIC_CONFIG,
    UPDATE_WORKER_POOL,
)

PAGE = ("continuationToken", "limit")
WORKER = "/workers/<workerPoolId>/<workerGroup>/<workerId>"
WORKER_SCOPE = "<workerPoolId>/<workerGroup>/<workerId>"
LIST_STATES = ("requested", "running", "stopping", "stopped", "standalone")
PoolWrite: TypeAlias = "Callable[[sqlite3.Connection, str, dict[str, Any], float], dict[str, Any]]"


def worker_scopes(pool_id: str, group: str, worker_id: str) -> list[str]:
    """What a registered worker may do: upstream's `createCredentials` scopes."""
    worker = f"{pool_id}/{group}/{worker_id}"
    return [
        f"assume:worker-type:{pool_id}",  # upstream's deprecated role, still granted
        f"assume:worker-pool:{pool_id}",
        f"assume:worker-id:{group}/{worker_id}",
        f"queue:worker-id:{group}/{worker_id}",
        f"secrets:get:worker-type:{pool_id}",  # upstream's deprecated secret name
        f"secrets:get:worker-pool:{pool_id}",
        f"queue:claim-work:{pool_id}",
        f"worker-manager:remove-worker:{worker}",
        f"worker-manager:reregister-worker:{worker}",
        f"worker-manager:should-worker-terminate:{worker}",
    ]


def _page(call: Call) -> tuple[int, int]:
    """Offset and limit from `continuationToken` (an offset, as upstream's paginateResults) and `limit`."""
    token, limit = page_args(call)
    if token and not token.isdigit():
        raise APIError("InputError", "Invalid continuation token", token=token)  # as paginateResults
    return int(token or 0), limit


def _paged(key: str, items: list[dict[str, Any]], offset: int, limit: int) -> dict[str, Any]:
    """A page reply from `limit + 1` fetched items."""
    reply: dict[str, Any] = {key: items[:limit]}
    if len(items) > limit:
        reply["continuationToken"] = str(offset + limit)
    return reply


class WorkerManagerService:
    """Handlers for the worker-manager service."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # --- worker pools ---------------------------------------------------------------------------

    async def _write_pool(self, call: Call, write: PoolWrite) -> Reply:
        pool_id, body = call.params["workerPoolId"], call.body
        call.authorize(workerPoolId=pool_id, providerId=body["providerId"])
        (STATIC_CONFIG if body["providerId"] == "static" else POOL_CONFIG).check(body)
        current = now()
        return await self.ctx.db.run(lambda c: write(c, pool_id, body, current))

    async def create_worker_pool(self, call: Call) -> Reply:
        """Handle `createWorkerPool` (409 when the pool exists)."""
        return await self._write_pool(call, store.create_pool)

    async def update_worker_pool(self, call: Call) -> Reply:
        """Handle `updateWorkerPool`; a deleted pool comes back with a real providerId."""
        return await self._write_pool(call, store.update_pool)

    async def delete_worker_pool(self, call: Call) -> Reply:
        """Handle `deleteWorkerPool`: provider `null-provider`; its workers are told to terminate."""
        pool_id, current = call.params["workerPoolId"], now()
        return await self.ctx.db.run(lambda c: store.delete_pool(c, pool_id, current))

    async def worker_pool(self, call: Call) -> Reply:
        """Handle `workerPool`."""
        pool_id = call.params["workerPoolId"]
        return await self.ctx.db.run(lambda c: store.get_pool(c, pool_id))

    async def list_worker_pools(self, call: Call) -> Reply:
        """Handle `listWorkerPools`."""
        offset, limit = _page(call)
        pools = await self.ctx.db.run(lambda c: store.list_pools(c, offset, limit + 1))
        return _paged("workerPools", pools, offset, limit)

    # --- workers --------------------------------------------------------------------------------

    def _credentials(self, body: dict[str, Any], provider_id: str, expires: float) -> dict[str, str]:
        pool_id, group, worker_id = body["workerPoolId"], body["workerGroup"], body["workerId"]
        name = f"worker/{provider_id}/{pool_id}/{group}/{worker_id}"
        return self.ctx.temporary_credentials(name, worker_scopes(pool_id, group, worker_id), expires)

    async def create_worker(self, call: Call) -> Reply:
        """Handle `createWorker`: a static worker with its own secret, running until `expires`."""
        key, body, current = self._worker_key(call), call.body, now()
        return await self.ctx.db.run(lambda c: store.create_worker(c, key, body, current))

    async def update_worker(self, call: Call) -> Reply:
        """Handle `updateWorker`: a static worker's expires, capacity and secret."""
        key, body, current = self._worker_key(call), call.body, now()
        return await self.ctx.db.run(lambda c: store.update_worker(c, key, body, current))

    async def register_worker(self, call: Call) -> Reply:
        """Handle `registerWorker`: no scopes; the worker's static secret is the proof."""
        body, secret, current = call.body, slugid.nice() + slugid.nice(), now()
        config, expires = await self.ctx.db.run(lambda c: store.register(c, body, secret, current))
        return {
            "expires": to_iso(expires),
            "credentials": self._credentials(body, body["providerId"], expires),
            "workerConfig": config.get("workerConfig", {}),
            "secret": secret,
        }

    async def reregister_worker(self, call: Call) -> Reply:
        """Handle `reregisterWorker`: the last secret buys new credentials and the next secret."""
        body = call.body
        call.authorize(
            workerPoolId=body["workerPoolId"], workerGroup=body["workerGroup"], workerId=body["workerId"]
        )
        secret, current = slugid.nice() + slugid.nice(), now()
        provider_id, expires = await self.ctx.db.run(lambda c: store.reregister(c, body, secret, current))
        return {
            "expires": to_iso(expires),
            "credentials": self._credentials(body, provider_id, expires),
            "secret": secret,
        }

    def _worker_key(self, call: Call) -> tuple[str, str, str]:
        return call.params["workerPoolId"], call.params["workerGroup"], call.params["workerId"]

    async def worker(self, call: Call) -> Reply:
        """Handle `worker`."""
        key = self._worker_key(call)
        return store.worker_api(await self.ctx.db.run(lambda c: store.get_worker(c, *key)))

    async def remove_worker(self, call: Call) -> Reply:
        """Handle `removeWorker`: the worker becomes `stopping` and is told to terminate."""
        key, current = self._worker_key(call), now()
        await self.ctx.db.run(lambda c: store.remove_worker(c, *key, current))
        return {}

    async def should_worker_terminate(self, call: Call) -> Reply:
        """Handle `shouldWorkerTerminate`."""
        key = self._worker_key(call)
        return await self.ctx.db.run(lambda c: store.should_terminate(c, *key))

    async def _list_workers(self, call: Call, group: str | None) -> Reply:
        state = call.query.get("state") or None
        if state is not None and state not in LIST_STATES:
            raise APIError("InvalidRequestArguments", f"`state` must be one of {', '.join(LIST_STATES)}")
        offset, limit = _page(call)
        if call.query.get("launchConfigId"):  # static workers have no launch configuration
            return {"workers": []}
        fetch = functools.partial(
            store.list_workers,
            pool_id=call.params["workerPoolId"],
            group=group,
            state=state,
            offset=offset,
            limit=limit + 1,
        )
        return _paged("workers", await self.ctx.db.run(fetch), offset, limit)

    async def list_workers_for_worker_pool(self, call: Call) -> Reply:
        """Handle `listWorkersForWorkerPool` (404 when the pool does not exist)."""
        return await self._list_workers(call, None)

    async def list_workers_for_worker_group(self, call: Call) -> Reply:
        """Handle `listWorkersForWorkerGroup`."""
        return await self._list_workers(call, call.params["workerGroup"])

    # --- errors ---------------------------------------------------------------------------------

    async def report_worker_error(self, call: Call) -> Reply:
        """Handle `reportWorkerError`: recorded for `listWorkerPoolErrors` (publicly visible upstream)."""
        pool_id, body = call.params["workerPoolId"], call.body
        call.authorize(workerPoolId=pool_id, workerGroup=body["workerGroup"], workerId=body["workerId"])
        error_id, current = slugid.nice(), now()
        return await self.ctx.db.run(lambda c: store.report_error(c, pool_id, error_id, body, current))

    async def list_worker_pool_errors(self, call: Call) -> Reply:
        """Handle `listWorkerPoolErrors`, newest first."""
        pool_id = call.params["workerPoolId"]
        offset, limit = _page(call)
        if call.query.get("launchConfigId"):  # errors reported here have no launch configuration
            return {"workerPoolErrors": []}
        error_id = call.query.get("errorId") or None
        errors = await self.ctx.db.run(lambda c: store.list_errors(c, pool_id, error_id, offset, limit + 1))
        return _paged("workerPoolErrors", errors, offset, limit)

    def endpoints(self) -> list[Endpoint]:
        """The endpoint table (the three `/workers/...` GETs from the longest route down)."""
        pool = "/worker-pool/<*workerPoolId>"
        manage = "worker-manager:manage-worker-pool:<workerPoolId>"
        get_pool = "worker-manager:get-worker-pool:<workerPoolId>"
        list_workers = "worker-manager:list-workers:<workerPoolId>"
        return [
            *health_endpoints(),
            Endpoint(
                "createWorkerPool",
                "PUT",
                pool,
                self.create_worker_pool,
                {"AllOf": [manage, "worker-manager:provider:<providerId>"]},
                CREATE_WORKER_POOL,
            ),
            Endpoint(
                "updateWorkerPool",
                "POST",
                pool,
                self.update_worker_pool,
                {"AllOf": [manage, "worker-manager:provider:<providerId>"]},
                UPDATE_WORKER_POOL,
            ),
            Endpoint("deleteWorkerPool", "DELETE", pool, self.delete_worker_pool, manage),
            Endpoint("workerPool", "GET", pool, self.worker_pool, get_pool),
            Endpoint(
                "listWorkerPools",
                "GET",
                "/worker-pools",
                self.list_worker_pools,
                "worker-manager:list-worker-pools",
                query=PAGE,
            ),
            Endpoint(
                "reportWorkerError",
                "POST",
                "/worker-pool-errors/<*workerPoolId>",
                self.report_worker_error,
                {"AllOf": ["assume:worker-pool:<workerPoolId>", "assume:worker-id:<workerGroup>/<workerId>"]},
                REPORT_WORKER_ERROR,
            ),
            Endpoint(
                "listWorkerPoolErrors",
                "GET",
                "/worker-pool-errors/<*workerPoolId>",
                self.list_worker_pool_errors,
                "worker-manager:list-worker-pool-errors:<workerPoolId>",
                query=(*PAGE, "launchConfigId", "errorId"),
            ),
            Endpoint(
                "shouldWorkerTerminate",
                "GET",
                f"{WORKER}/should-terminate",
                self.should_worker_terminate,
                f"worker-manager:should-worker-terminate:{WORKER_SCOPE}",
            ),
            Endpoint("worker", "GET", WORKER, self.worker, f"worker-manager:get-worker:{WORKER_SCOPE}"),
            Endpoint(
                "createWorker",
                "PUT",
                WORKER,
                self.create_worker,
                f"worker-manager:create-worker:{WORKER_SCOPE}",
                CREATE_WORKER,
                clean_payload=_clean_provider_info,
            ),
            Endpoint(
                "updateWorker",
                "POST",
                WORKER,
                self.update_worker,
                f"worker-manager:update-worker:{WORKER_SCOPE}",
                CREATE_WORKER,
                clean_payload=_clean_provider_info,
            ),
            Endpoint(
                "removeWorker",
                "DELETE",
                WORKER,
                self.remove_worker,
                f"worker-manager:remove-worker:{WORKER_SCOPE}",
            ),
            Endpoint(
                "listWorkersForWorkerGroup",
                "GET",
                "/workers/<workerPoolId>/<workerGroup>",
                self.list_workers_for_worker_group,
                f"{list_workers}/<workerGroup>",
                query=PAGE,
            ),
            Endpoint(
                "listWorkersForWorkerPool",
                "GET",
                "/workers/<*workerPoolId>",
                self.list_workers_for_worker_pool,
                list_workers,
                query=(*PAGE, "launchConfigId", "state"),
            ),
            Endpoint(
                "registerWorker",
                "POST",
                "/worker/register",
                self.register_worker,
                None,
                REGISTER_WORKER,
                clean_payload=_omitted,
            ),
            Endpoint(
                "reregisterWorker",
                "POST",
                "/worker/reregister",
                self.reregister_worker,
                f"worker-manager:reregister-worker:{WORKER_SCOPE}",
                REREGISTER_WORKER,
                clean_payload=_omitted,
            ),
        ]


def _omitted(payload: Any) -> Any:
    """register/reregister: an error shows none of the body, as upstream's cleanPayload."""
    return OMITTED


def _clean_provider_info(payload: Any) -> Any:
    """createWorker/updateWorker: an error shows the body without the worker's static secret."""
    info = payload.get("providerInfo") if isinstance(payload, dict) else None
    if isinstance(info, dict) and info.get("staticSecret"):
        info["staticSecret"] = OMITTED
    return payload
