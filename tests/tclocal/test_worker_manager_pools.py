"""worker-manager's worker pools and worker-pool errors through the official aio client."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from tclocal.testing import unique_worker_type

from .conftest import Clients, refused
from .deployment import Deployment
from .test_worker_manager_workers import make_pool, register


def definition(**overrides: Any) -> dict[str, Any]:
    """A valid createWorkerPool body."""
    return {
        "providerId": "static",
        "description": "pool",
        "config": {"workerConfig": {"a": 1}, "lifecycle": {"reregistrationTimeout": 3600}},
        "owner": "owner@example.com",
        "emailOnError": True,
        **overrides,
    }


async def test_create_get_update_and_list_pools(clients: Clients) -> None:
    manager = clients.make("worker-manager")
    pool_id = f"tc-local/{unique_worker_type()}"
    body = definition()
    delete_later(clients, pool_id)
    created = await manager.createWorkerPool(pool_id, body)
    assert {k: created[k] for k in body} == body
    assert created["workerPoolId"] == pool_id and created["created"] == created["lastModified"]
    assert created["runningCount"] == created["currentCapacity"] == 0
    assert await manager.workerPool(pool_id) == created
    await refused(manager.createWorkerPool(pool_id, body), 409, "RequestConflict")
    # A workerPool reply can be written back (its dates are ignored, its id must be right).
    changed = {**{k: v for k, v in created.items() if k in body}, "description": "changed"}
    updated = await manager.updateWorkerPool(pool_id, {**changed, "workerPoolId": pool_id})
    assert updated["description"] == "changed" and updated["created"] == created["created"]
    assert updated["lastModified"] >= created["lastModified"]
    await refused(
        manager.updateWorkerPool(pool_id, {**changed, "workerPoolId": "tc-local/other"}), 400, "InputError"
    )
    await refused(
        manager.updateWorkerPool(f"tc-local/{unique_worker_type()}", changed), 404, "ResourceNotFound"
    )
    await refused(manager.workerPool(f"tc-local/{unique_worker_type()}"), 404, "ResourceNotFound")
    second = f"tc-local/{unique_worker_type()}"
    delete_later(clients, second)
    await manager.createWorkerPool(second, definition())
    everything: list[str] = []
    query: dict[str, Any] = {"limit": 1}
    while True:
        page = await manager.listWorkerPools(query=query)
        everything += [p["workerPoolId"] for p in page["workerPools"]]
        assert len(page["workerPools"]) <= 1
        if "continuationToken" not in page:
            break
        query["continuationToken"] = page["continuationToken"]
    assert {pool_id, second} <= set(everything)
    await refused(manager.listWorkerPools(query={"continuationToken": "!!"}), 400, "InputError")


async def test_pool_definitions_are_checked(clients: Clients) -> None:
    manager = clients.make("worker-manager")
    pool_id = f"tc-local/{unique_worker_type()}"
    body = await refused(
        manager.createWorkerPool(pool_id, definition(config={"workerConfig": "not an object"})),
        400,
        "InputValidationError",
    )
    assert "workerConfig" in body["message"]
    await refused(
        manager.createWorkerPool(
            pool_id, definition(config={"lifecycle": {"reregistrationTimeout": 2592001}})
        ),
        400,
        "InputValidationError",
    )
    for bad in (
        definition(owner="not an email"),
        definition(unexpected=1),
        definition(providerId="has space"),
    ):
        await refused(manager.createWorkerPool(pool_id, bad), 400, "InputValidationError")
    await refused(manager.workerPool(pool_id), 404, "ResourceNotFound")  # nothing was created


@pytest.mark.tclocal_only("tc-local treats every pool as static; upstream needs each providerId configured")
async def test_any_provider_id_and_config_is_kept(clients: Clients) -> None:
    manager = clients.make("worker-manager")
    pool_id = f"tc-local/{unique_worker_type()}"
    delete_later(clients, pool_id)
    # Any other config (another provider type's) is kept and ignored.
    extra = {"launchConfigs": [{"region": "x"}], "minCapacity": 0}
    created = await manager.createWorkerPool(pool_id, definition(providerId="aws", config=extra))
    assert created["config"] == extra and created["providerId"] == "aws"


async def test_pool_scopes(tc: Deployment, clients: Clients) -> None:
    pool_id = f"tc-local/{unique_worker_type()}"
    client_id = f"tests/wm-admin-{unique_worker_type()}"
    token = await tc.create_client(
        client_id,
        [f"worker-manager:manage-worker-pool:{pool_id}", "worker-manager:provider:static"],
    )
    admin = clients.make("worker-manager", {"clientId": client_id, "accessToken": token})
    await refused(admin.createWorkerPool(pool_id, definition(providerId="aws")), 403, "InsufficientScopes")
    await admin.createWorkerPool(pool_id, definition())
    # Reading pools is the anonymous role's (upstream's development configuration).
    assert (await admin.workerPool(pool_id))["workerPoolId"] == pool_id
    await refused(
        admin.createWorkerPool(f"tc-local/{unique_worker_type()}", definition()), 403, "InsufficientScopes"
    )
    await refused(clients.make("worker-manager", None).deleteWorkerPool(pool_id), 403, "InsufficientScopes")
    assert (await admin.deleteWorkerPool(pool_id))["providerId"] == "null-provider"


async def test_report_and_list_worker_errors(clients: Clients) -> None:
    pool_id, secret = await make_pool(clients)
    registered = await register(clients, pool_id, secret)
    worker = clients.make("worker-manager", {**registered["credentials"]})
    report = {
        "workerGroup": "g1",
        "workerId": "w1",
        "kind": "worker-error",
        "title": "Disk full",
        "description": "no space left on /",
        "extra": {"free": 0},
    }
    first = await worker.reportWorkerError(pool_id, report)
    assert first["workerPoolId"] == pool_id and first["kind"] == "worker-error"
    assert first["extra"] == {"free": 0, "workerGroup": "g1", "workerId": "w1"}
    second = await worker.reportWorkerError(pool_id, {**report, "title": "Again"})
    manager = clients.make("worker-manager")
    listed = (await manager.listWorkerPoolErrors(pool_id))["workerPoolErrors"]
    assert [e["errorId"] for e in listed] == [second["errorId"], first["errorId"]]  # newest first
    only = await manager.listWorkerPoolErrors(pool_id, query={"errorId": first["errorId"]})
    assert only["workerPoolErrors"] == [first]
    paged = await manager.listWorkerPoolErrors(pool_id, query={"limit": 1})
    assert len(paged["workerPoolErrors"]) == 1 and paged["continuationToken"]
    assert (await manager.listWorkerPoolErrors(pool_id, query={"launchConfigId": "lc"}))[
        "workerPoolErrors"
    ] == []
    # A worker reports only as itself, to its own pool, and only to a pool that exists.
    await refused(worker.reportWorkerError(pool_id, {**report, "workerId": "w2"}), 403, "InsufficientScopes")
    elsewhere = f"tc-local/{unique_worker_type()}"
    await refused(worker.reportWorkerError(elsewhere, report), 403, "InsufficientScopes")
    await refused(manager.reportWorkerError(elsewhere, report), 404, "ResourceNotFound")
    await refused(
        worker.reportWorkerError(pool_id, {**report, "kind": "UPPER CASE"}), 400, "InputValidationError"
    )
    other_pool, _ = await make_pool(clients)
    assert (await manager.listWorkerPoolErrors(other_pool))["workerPoolErrors"] == []


def delete_later(clients: Clients, pool_id: str) -> None:
    """Delete the pool when the test ends (upstream then removes it once its workers are gone)."""
    clients.tc.defer(functools.partial(clients.tc.root_call, "worker-manager", "deleteWorkerPool", pool_id))
