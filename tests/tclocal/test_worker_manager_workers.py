"""worker-manager's worker interface, as worker-runner's static provider and the worker use it.

createWorker (an operator declares a static worker with its own `staticSecret`), registerWorker
(anonymous, proven by that secret), the credentials it issues, reregisterWorker, worker/list,
updateWorker, removeWorker and shouldWorkerTerminate.
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any

import pytest
import slugid

from tclocal.core.timestamps import from_now, parse_iso
from tclocal.testing import unique_worker_type

from .conftest import Clients, refused
from .deployment import Deployment

LIFETIME = 3600


def new_secret() -> str:
    """A 44-character static secret, as upstream suggests (two slugids)."""
    return str(slugid.nice() + slugid.nice())


async def make_pool(clients: Clients, **config: Any) -> tuple[str, str]:
    """Create a static pool of this test's own with worker g1/w1 (as root); return its id and secret."""
    pool_id = f"tc-local/{unique_worker_type()}"
    clients.tc.defer(functools.partial(clients.tc.root_call, "worker-manager", "deleteWorkerPool", pool_id))
    await clients.make("worker-manager").createWorkerPool(
        pool_id,
        {
            "providerId": "static",
            "description": "a test pool",
            "config": config,
            "owner": "tests@example.com",
            "emailOnError": False,
        },
    )
    return pool_id, await make_worker(clients, pool_id)


async def make_worker(clients: Clients, pool_id: str, worker_id: str = "w1", group: str = "g1") -> str:
    """Declare a static worker with a secret of its own (createWorker, as root); return the secret."""
    secret = new_secret()
    body = {"expires": from_now(3600), "providerInfo": {"staticSecret": secret}}
    created = await clients.make("worker-manager").createWorker(pool_id, group, worker_id, body)
    assert (created["workerId"], created["state"], created["capacity"]) == (worker_id, "running", 1)
    return secret


async def register(
    clients: Clients, pool_id: str, secret: str, worker_id: str = "w1", **overrides: Any
) -> dict[str, Any]:
    """registerWorker without credentials, as worker-runner does."""
    request = {
        "workerPoolId": pool_id,
        "providerId": "static",
        "workerGroup": "g1",
        "workerId": worker_id,
        "workerIdentityProof": {"staticSecret": secret},
        **overrides,
    }
    result: dict[str, Any] = await clients.make("worker-manager", None).registerWorker(request)
    return result


async def test_register_issues_worker_credentials_and_config(tc: Deployment, clients: Clients) -> None:
    worker_config = {"genericWorker": {"config": {"idleTimeoutSecs": 5}}}
    pool_id, secret = await make_pool(
        clients, workerConfig=worker_config, lifecycle={"reregistrationTimeout": LIFETIME}
    )
    before = time.time()
    registered = await register(clients, pool_id, secret, systemBootTime=from_now(-30))
    assert registered["workerConfig"] == worker_config
    assert parse_iso(registered["expires"]) == pytest.approx(before + LIFETIME, abs=60)
    assert len(registered["secret"]) == 44 and registered["secret"] != secret
    credentials = registered["credentials"]
    assert credentials["clientId"] == f"worker/static/{pool_id}/g1/w1"
    certificate = json.loads(credentials["certificate"])
    assert certificate["expiry"] == pytest.approx(parse_iso(registered["expires"]) * 1000, abs=1)
    worker = f"{pool_id}/g1/w1"
    assert set(certificate["scopes"]) == {
        f"assume:worker-type:{pool_id}",
        f"assume:worker-pool:{pool_id}",
        "assume:worker-id:g1/w1",
        "queue:worker-id:g1/w1",
        f"secrets:get:worker-type:{pool_id}",
        f"secrets:get:worker-pool:{pool_id}",
        f"queue:claim-work:{pool_id}",
        f"worker-manager:remove-worker:{worker}",
        f"worker-manager:reregister-worker:{worker}",
        f"worker-manager:should-worker-terminate:{worker}",
    }
    # What worker-runner and the worker then do with them: read the pool's secret, claim work.
    tc.defer(functools.partial(tc.root_call, "secrets", "remove", f"worker-pool:{pool_id}"))
    await clients.make("secrets").set(
        f"worker-pool:{pool_id}", {"secret": {"config": {"x": 1}}, "expires": from_now(600)}
    )
    assert (await clients.make("secrets", {**credentials}).get(f"worker-pool:{pool_id}"))["secret"] == {
        "config": {"x": 1}
    }
    queue = clients.make("queue")
    provisioner, worker_type = pool_id.split("/")
    await queue.createTask(slugid.nice(), tc.make_task(provisionerId=provisioner, workerType=worker_type))
    claims = await clients.make("queue", {**credentials}).claimWork(
        pool_id, {"workerGroup": "g1", "workerId": "w1", "tasks": 1}
    )
    assert len(claims["tasks"]) == 1
    await refused(
        clients.make("queue", {**credentials}).claimWork(
            pool_id, {"workerGroup": "g1", "workerId": "someone-else", "tasks": 1}
        ),
        403,
        "InsufficientScopes",
    )
    manager = clients.make("worker-manager", {**credentials})
    assert await manager.shouldWorkerTerminate(pool_id, "g1", "w1") == {"terminate": False, "reason": "none"}


async def test_registered_worker_is_listed_and_counted(clients: Clients) -> None:
    pool_id, secret = await make_pool(clients)
    await register(clients, pool_id, secret, "w1")
    await register(clients, pool_id, await make_worker(clients, pool_id, "w2", "g2"), "w2", workerGroup="g2")
    manager = clients.make("worker-manager")
    worker = await manager.worker(pool_id, "g1", "w1")
    assert (worker["workerPoolId"], worker["providerId"], worker["state"], worker["capacity"]) == (
        pool_id,
        "static",
        "running",
        1,
    )
    assert parse_iso(worker["expires"]) > time.time()
    listed = await manager.listWorkersForWorkerPool(pool_id)
    assert [(w["workerGroup"], w["workerId"]) for w in listed["workers"]] == [("g1", "w1"), ("g2", "w2")]
    first = await manager.listWorkersForWorkerPool(pool_id, query={"limit": 1})
    rest = await manager.listWorkersForWorkerPool(
        pool_id, query={"limit": 1, "continuationToken": first["continuationToken"]}
    )
    assert [w["workerId"] for w in first["workers"] + rest["workers"]] == ["w1", "w2"]
    assert "continuationToken" not in rest
    group = await manager.listWorkersForWorkerGroup(pool_id, "g2")
    assert [w["workerId"] for w in group["workers"]] == ["w2"]
    assert (await manager.listWorkersForWorkerPool(pool_id, query={"state": "stopping"}))["workers"] == []
    assert (await manager.listWorkersForWorkerPool(pool_id, query={"launchConfigId": "lc"}))["workers"] == []
    await refused(
        manager.listWorkersForWorkerPool(pool_id, query={"state": "sleeping"}), 400, "InvalidRequestArguments"
    )
    pool = await manager.workerPool(pool_id)
    assert (pool["runningCount"], pool["runningCapacity"], pool["currentCapacity"]) == (2, 2, 2)
    await refused(manager.worker(pool_id, "g1", "nobody"), 404, "ResourceNotFound")
    await refused(
        manager.listWorkersForWorkerPool(f"tc-local/{unique_worker_type()}"), 404, "ResourceNotFound"
    )


async def test_registration_needs_the_workers_static_secret(clients: Clients) -> None:
    pool_id, secret = await make_pool(clients)
    wrong = new_secret()
    body = await refused(register(clients, pool_id, wrong), 400, "InputError")
    assert "bad staticSecret" in body["message"]
    assert wrong not in json.dumps(body)  # a secret is never echoed back in an error
    assert body["requestInfo"]["payload"] == "(OMITTED)"  # as upstream's cleanPayload
    await refused(register(clients, f"tc-local/{unique_worker_type()}", secret), 404, "ResourceNotFound")
    await refused(register(clients, pool_id, secret, "nobody"), 404, "ResourceNotFound")  # never created
    await refused(register(clients, pool_id, secret, providerId="no-such-provider"), 404, "ResourceNotFound")
    google = register(clients, pool_id, secret, workerIdentityProof={"token": "jwt"})
    body = await refused(google, 400, "InputError")
    assert "missing staticSecret" in body["message"]
    await refused(register(clients, pool_id, "short"), 400, "InputValidationError")
    manager = clients.make("worker-manager")
    # createWorker: the secret is required, an existing worker only with the same secret.
    late = {"expires": from_now(-60), "providerInfo": {"staticSecret": secret}}
    await refused(manager.createWorker(pool_id, "g1", "w9", late), 400, "InputError")
    no_secret = manager.createWorker(pool_id, "g1", "w9", {"expires": from_now(60)})
    assert "staticSecret" in (await refused(no_secret, 400, "InputError"))["message"]
    again = {"expires": from_now(3600), "providerInfo": {"staticSecret": secret}}
    assert (await manager.createWorker(pool_id, "g1", "w1", again))["workerId"] == "w1"  # idempotent
    other = {**again, "providerInfo": {"staticSecret": new_secret()}}
    body = await refused(manager.createWorker(pool_id, "g1", "w1", other), 400, "InputError")
    assert body["requestInfo"]["payload"]["providerInfo"] == {"staticSecret": "(OMITTED)"}
    missing_pool = manager.createWorker(f"tc-local/{unique_worker_type()}", "g1", "w1", again)
    await refused(missing_pool, 404, "ResourceNotFound")
    await refused(manager.updateWorker(pool_id, "g1", "nobody", again), 404, "ResourceNotFound")
    # A static pool's config is upstream's config-static: the secrets are the workers', not the pool's.
    bad_config = {"providerId": "static", "description": "", "owner": "a@b.c", "emailOnError": False}
    refusal = manager.createWorkerPool(
        f"tc-local/{unique_worker_type()}", {**bad_config, "config": {"staticSecret": secret}}
    )
    await refused(refusal, 400, "InputValidationError")
    await refused(manager.worker(pool_id, "g1", "nobody"), 404, "ResourceNotFound")


async def test_update_worker_rotates_its_secret_and_expires_it(clients: Clients) -> None:
    pool_id, secret = await make_pool(clients)
    manager = clients.make("worker-manager")
    rotated = new_secret()
    body = {"expires": from_now(7200), "capacity": 2, "providerInfo": {"staticSecret": rotated}}
    updated = await manager.updateWorker(pool_id, "g1", "w1", body)
    assert updated["capacity"] == 2 and parse_iso(updated["expires"]) > time.time() + 3600
    await refused(register(clients, pool_id, secret), 400, "InputError")  # the old secret
    assert (await register(clients, pool_id, rotated))["secret"]
    await manager.updateWorker(pool_id, "g1", "w1", {**body, "expires": from_now(-60)})  # expire it now
    refusal = await refused(register(clients, pool_id, rotated), 400, "InputError")
    assert "expired" in refusal["message"]


async def test_reregister_rotates_secret_and_credentials(clients: Clients) -> None:
    pool_id, secret = await make_pool(clients, lifecycle={"reregistrationTimeout": LIFETIME})
    registered = await register(clients, pool_id, secret)
    manager = clients.make("worker-manager", {**registered["credentials"]})
    request = {"workerPoolId": pool_id, "workerGroup": "g1", "workerId": "w1", "secret": registered["secret"]}
    renewed = await manager.reregisterWorker(request)
    assert renewed["secret"] not in (registered["secret"], secret)
    assert renewed["credentials"]["clientId"] == registered["credentials"]["clientId"]
    assert renewed["credentials"]["accessToken"] != registered["credentials"]["accessToken"]
    assert parse_iso(renewed["expires"]) >= parse_iso(registered["expires"])
    await refused(manager.reregisterWorker(request), 400, "InputError")  # the old secret is spent
    again = clients.make("worker-manager", {**renewed["credentials"]})
    assert (await again.reregisterWorker({**request, "secret": renewed["secret"]}))["secret"]
    other = await register(clients, pool_id, await make_worker(clients, pool_id, "w2"), "w2")
    as_other = clients.make("worker-manager", {**other["credentials"]})
    await refused(
        as_other.reregisterWorker({**request, "secret": other["secret"]}), 403, "InsufficientScopes"
    )


async def test_removed_worker_is_stopped(clients: Clients) -> None:
    pool_id, secret = await make_pool(clients)
    registered = await register(clients, pool_id, secret)
    manager = clients.make("worker-manager", {**registered["credentials"]})
    await manager.removeWorker(pool_id, "g1", "w1")  # its own credentials allow it, as upstream
    root = clients.make("worker-manager")
    assert (await root.worker(pool_id, "g1", "w1"))["state"] == "stopped"  # static: at once
    stopped = await root.listWorkersForWorkerPool(pool_id, query={"state": "stopped"})
    assert [w["workerId"] for w in stopped["workers"]] == ["w1"]
    pool = await root.workerPool(pool_id)
    assert (pool["stoppedCount"], pool["runningCount"], pool["currentCapacity"]) == (1, 0, 0)
    await manager.removeWorker(pool_id, "g1", "w1")  # again: no change, no error
    request = {"workerPoolId": pool_id, "workerGroup": "g1", "workerId": "w1", "secret": registered["secret"]}
    await refused(manager.reregisterWorker(request), 400, "InputError")
    await refused(root.removeWorker(pool_id, "g1", "nobody"), 404, "ResourceNotFound")
    await refused(root.shouldWorkerTerminate(pool_id, "g1", "nobody"), 404, "ResourceNotFound")
    # A removed static worker cannot register again.
    body = await refused(register(clients, pool_id, secret), 400, "InputError")
    assert "not running" in body["message"]


async def test_deleted_pool_keeps_its_workers_and_can_come_back(clients: Clients) -> None:
    pool_id, secret = await make_pool(clients)
    await register(clients, pool_id, secret)
    root = clients.make("worker-manager")
    deleted = await root.deleteWorkerPool(pool_id)
    assert deleted["providerId"] == "null-provider"
    fresh = {"expires": from_now(3600), "providerInfo": {"staticSecret": new_secret()}}
    await refused(root.createWorker(pool_id, "g1", "w2", fresh), 400, "InputError")  # null-provider
    # Its static workers stay (until they expire) and may still register, as upstream.
    assert (await root.worker(pool_id, "g1", "w1"))["state"] == "running"
    assert (await register(clients, pool_id, secret))["secret"]
    # Updating it with a real provider brings it back, as upstream.
    revived = await root.updateWorkerPool(
        pool_id,
        {
            **{k: deleted[k] for k in ("description", "config", "owner", "emailOnError")},
            "providerId": "static",
        },
    )
    assert revived["providerId"] == "static"
    await register(clients, pool_id, await make_worker(clients, pool_id, "w2"), "w2")
    assert (await root.shouldWorkerTerminate(pool_id, "g1", "w2"))["terminate"] is False


@pytest.mark.tclocal_only(
    "upstream's static provider never asks a worker to terminate; tc-local does after removeWorker "
    "or deleteWorkerPool, so that a worker's reaction can be tested without a cloud"
)
async def test_removed_worker_or_deleted_pool_is_told_to_terminate(clients: Clients) -> None:
    pool_id, secret = await make_pool(clients)
    registered = await register(clients, pool_id, secret)
    manager = clients.make("worker-manager", {**registered["credentials"]})
    assert await manager.shouldWorkerTerminate(pool_id, "g1", "w1") == {"terminate": False, "reason": "none"}
    await manager.removeWorker(pool_id, "g1", "w1")
    answer = await manager.shouldWorkerTerminate(pool_id, "g1", "w1")
    assert answer["terminate"] is True and "removed" in answer["reason"]
    other = await register(clients, pool_id, await make_worker(clients, pool_id, "w2"), "w2")
    await clients.make("worker-manager").deleteWorkerPool(pool_id)
    as_other = clients.make("worker-manager", {**other["credentials"]})
    answer = await as_other.shouldWorkerTerminate(pool_id, "g1", "w2")
    assert answer == {"terminate": True, "reason": f"worker pool {pool_id} was deleted"}


async def test_worker_endpoints_need_their_scopes(tc: Deployment, clients: Clients) -> None:
    pool_id, secret = await make_pool(clients)
    registered = await register(clients, pool_id, secret)
    other = await register(clients, pool_id, await make_worker(clients, pool_id, "w2"), "w2")
    as_other = clients.make("worker-manager", {**other["credentials"]})
    await refused(as_other.shouldWorkerTerminate(pool_id, "g1", "w1"), 403, "InsufficientScopes")
    await refused(as_other.removeWorker(pool_id, "g1", "w1"), 403, "InsufficientScopes")
    anonymous = clients.make("worker-manager", None)
    await refused(anonymous.shouldWorkerTerminate(pool_id, "g1", "w1"), 403, "InsufficientScopes")
    await refused(anonymous.removeWorker(pool_id, "g1", "w1"), 403, "InsufficientScopes")
    client_id = f"tests/wm-reader-{unique_worker_type()}"
    token = await tc.create_client(
        client_id,
        [f"worker-manager:get-worker:{pool_id}/*", f"worker-manager:list-workers:{pool_id}"],
    )
    reader = clients.make("worker-manager", {"clientId": client_id, "accessToken": token})
    assert (await reader.worker(pool_id, "g1", "w1"))["workerId"] == "w1"
    assert len((await reader.listWorkersForWorkerPool(pool_id))["workers"]) == 2
    await refused(reader.removeWorker(pool_id, "g1", "w1"), 403, "InsufficientScopes")
    assert registered["credentials"]["clientId"].endswith("/g1/w1")


async def test_worker_url_parameters_are_checked(clients: Clients) -> None:
    root = clients.make("worker-manager")
    await refused(root.worker("no-slash", "g1", "w1"), 400, "InvalidRequestArguments")
    # Scopes first when the URL gives them, as upstream's middleware: 403, not 400.
    anonymous = clients.make("worker-manager", None)
    await refused(anonymous.removeWorker("no-slash", "g1", "w1"), 403, "InsufficientScopes")
    await refused(root.worker("tc-local/Upper", "g1", "w1"), 400, "InvalidRequestArguments")
    await refused(root.shouldWorkerTerminate("tc-local/wt", "g1", "w.1"), 400, "InvalidRequestArguments")
    await refused(root.workerPool("a/b/c"), 400, "InvalidRequestArguments")
