"""The worker interface: claimWork long-poll, temporary credentials, reclaim, reports, retries."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import slugid

from tclocal.core.timestamps import parse_iso
from tclocal.testing import RunningTCLocal

from .conftest import Clients, claim_one, queue_id, refused, start_run, wait_for
from .deployment import Deployment


async def test_claim_gives_run_scoped_temporary_credentials(
    tc: Deployment, clients: Clients, queue: Any, worker_type: str
) -> None:
    task_id = slugid.nice()
    await queue.createTask(task_id, tc.make_task(workerType=worker_type, scopes=["project:thing"]))
    claim = await claim_one(queue, queue_id(worker_type), worker="worker-7")
    assert claim["runId"] == 0 and claim["workerId"] == "worker-7"
    assert claim["task"]["scopes"] == ["project:thing"]
    assert claim["status"]["runs"][0]["state"] == "running"
    credentials = claim["credentials"]
    assert credentials["clientId"] == f"task-client/{task_id}/0/on/test-group/worker-7"
    certificate = json.loads(credentials["certificate"])
    assert certificate["expiry"] == pytest.approx(parse_iso(claim["takenUntil"]) * 1000, abs=1)
    auth = clients.make("auth", credentials)
    scopes = (await auth.currentScopes())["scopes"]
    for scope in (
        f"queue:reclaim-task:{task_id}/0",
        f"queue:resolve-task:{task_id}/0",
        f"queue:create-artifact:{task_id}/0",
        "project:thing",
    ):
        assert scope in scopes
    other = slugid.nice()
    await queue.createTask(other, tc.make_task(workerType=worker_type))
    as_task = clients.make("queue", credentials)
    await refused(as_task.reportCompleted(other, 0), 403, "InsufficientScopes")


async def test_reclaim_extends_claim_and_renews_credentials(
    tc: Deployment, clients: Clients, queue: Any, worker_type: str
) -> None:
    run = await start_run(tc, clients, queue, worker_type)
    task_id, claim = run.task_id, run.claim
    reclaimed = await run.queue.reclaimTask(task_id, 0)
    assert reclaimed["takenUntil"] >= claim["takenUntil"]
    assert reclaimed["credentials"]["certificate"] != claim["credentials"]["certificate"]
    assert reclaimed["status"]["runs"][0]["takenUntil"] == reclaimed["takenUntil"]
    renewed = clients.make("queue", reclaimed["credentials"])
    status = (await renewed.reportCompleted(task_id, 0))["status"]
    assert status["state"] == "completed"
    again = (await renewed.reportCompleted(task_id, 0))["status"]
    assert again["runs"] == status["runs"]  # idempotent
    await refused(renewed.reportFailed(task_id, 0), 409, "RequestConflict")
    await refused(renewed.reclaimTask(task_id, 0), 409, "RequestConflict")
    await refused(queue.reclaimTask(task_id, 5), 404, "ResourceNotFound")
    await refused(queue.reportCompleted(task_id, 5), 404, "ResourceNotFound")
    await refused(queue.reportCompleted(slugid.nice(), 0), 404, "ResourceNotFound")


@pytest.mark.parametrize(
    "reason, retried, reason_created",
    [
        ("worker-shutdown", True, "retry"),
        ("intermittent-task", True, "task-retry"),
        ("malformed-payload", False, None),
        ("resource-unavailable", False, None),
        ("internal-error", False, None),
    ],
)
async def test_report_exception_retry_semantics(
    tc: Deployment,
    queue: Any,
    worker_type: str,
    reason: str,
    retried: bool,
    reason_created: str | None,
) -> None:
    task_id = slugid.nice()
    await queue.createTask(task_id, tc.make_task(workerType=worker_type, retries=1))
    await claim_one(queue, queue_id(worker_type))
    status = (await queue.reportException(task_id, 0, {"reason": reason}))["status"]
    assert status["runs"][0]["reasonResolved"] == reason
    if retried:
        assert status["state"] == "pending"
        assert status["runs"][1]["reasonCreated"] == reason_created
        assert status["retriesLeft"] == 0
        await claim_one(queue, queue_id(worker_type))
        status = (await queue.reportException(task_id, 1, {"reason": reason}))["status"]
        assert status["state"] == "exception" and len(status["runs"]) == 2  # no retries left
    else:
        assert status["state"] == "exception" and len(status["runs"]) == 1


@pytest.mark.parametrize("reason", ["no-such-reason", "superseded"])
async def test_report_exception_refuses_reasons_outside_todays_schema(
    tc: Deployment, queue: Any, worker_type: str, reason: str
) -> None:
    # `superseded` was a seed-era reason; today's task-exception-request schema does not list it.
    task_id = slugid.nice()
    await queue.createTask(task_id, tc.make_task(workerType=worker_type))
    await claim_one(queue, queue_id(worker_type))
    await refused(queue.reportException(task_id, 0, {"reason": reason}), 400, "InputValidationError")
    assert (await queue.status(task_id))["status"]["runs"][0]["state"] == "running"
    await queue.reportException(task_id, 0, {"reason": "internal-error"})


async def test_claim_work_validates_and_checks_worker_scopes(
    tc: Deployment, clients: Clients, worker_type: str
) -> None:
    client_id = f"tests/worker-{worker_type}"
    token = await tc.create_client(
        client_id, [f"queue:claim-work:tc-local/{worker_type}", "queue:worker-id:my-group/*"]
    )
    worker = clients.make("queue", {"clientId": client_id, "accessToken": token})
    reply = await worker.claimWork(
        queue_id(worker_type), {"workerGroup": "my-group", "workerId": "a", "tasks": 1}
    )
    assert reply == {"tasks": []}
    elsewhere = {"workerGroup": "other", "workerId": "a", "tasks": 1}
    await refused(worker.claimWork(queue_id(worker_type), elsewhere), 403, "InsufficientScopes")
    too_many = {"workerGroup": "my-group", "workerId": "a", "tasks": 33}
    await refused(worker.claimWork(queue_id(worker_type), too_many), 400, "InputValidationError")


@pytest.mark.tclocal_only("watches tc-local's own long-poll wake-up channel")
async def test_claim_work_returns_as_soon_as_work_appears(
    tc: Deployment, local: RunningTCLocal, clients: Clients, worker_type: str
) -> None:
    long_poll = clients.make("queue")
    claim = asyncio.create_task(
        long_poll.claimWork(queue_id(worker_type), {"workerGroup": "g", "workerId": "w", "tasks": 32})
    )
    notifier = local.server.ctx.notifier if local.server.ctx else None
    assert notifier is not None

    async def waiting() -> int:
        return notifier.waiting(queue_id(worker_type))

    await wait_for(waiting, lambda n: n == 1)  # the long-poll is parked, with no work
    task_id = slugid.nice()
    await clients.make("queue").createTask(task_id, tc.make_task(workerType=worker_type))
    # The service's long-poll is 2 s here; an answer well within it can only come from the wake-up.
    reply = await asyncio.wait_for(claim, timeout=1.5)
    assert [c["status"]["taskId"] for c in reply["tasks"]] == [task_id]


async def test_claim_work_orders_by_priority_then_age(tc: Deployment, queue: Any, worker_type: str) -> None:
    low, high, low2 = slugid.nice(), slugid.nice(), slugid.nice()
    await queue.createTask(low, tc.make_task(workerType=worker_type, priority="low"))
    await queue.createTask(high, tc.make_task(workerType=worker_type, priority="very-high"))
    await queue.createTask(low2, tc.make_task(workerType=worker_type, priority="low"))
    reply = await queue.claimWork(queue_id(worker_type), {"workerGroup": "g", "workerId": "w", "tasks": 32})
    assert [c["status"]["taskId"] for c in reply["tasks"]] == [high, low, low2]


async def test_concurrent_claimers_never_share_a_run(
    tc: Deployment, clients: Clients, queue: Any, worker_type: str
) -> None:
    ids = {slugid.nice() for _ in range(40)}
    await asyncio.gather(*(queue.createTask(t, tc.make_task(workerType=worker_type)) for t in ids))
    claimers = [clients.make("queue") for _ in range(8)]

    async def drain(worker: Any, n: int) -> list[str]:
        got: list[str] = []
        while True:
            reply = await worker.claimWork(
                queue_id(worker_type), {"workerGroup": "g", "workerId": f"w{n}", "tasks": 3}
            )
            if not reply["tasks"]:
                return got
            got += [c["status"]["taskId"] for c in reply["tasks"]]

    results = await asyncio.gather(*(drain(w, n) for n, w in enumerate(claimers)))
    claimed = [t for r in results for t in r]
    assert sorted(claimed) == sorted(ids)  # every task once, none twice
    assert sum(1 for r in results if r) > 1  # the claimers really competed
