"""The queue's task endpoints through the official aio client: happy paths and error paths."""

from __future__ import annotations

from typing import Any

import pytest
import slugid

from tclocal.core.timestamps import from_now

from .conftest import Clients, claim_one, queue_id, refused, start_run
from .deployment import Deployment


async def test_ping_and_health(queue: Any) -> None:
    assert (await queue.ping())["alive"] is True


async def test_create_task_returns_pending_status(tc: Deployment, queue: Any, worker_type: str) -> None:
    task_id = slugid.nice()
    task = tc.make_task(workerType=worker_type, priority="high")
    status = (await queue.createTask(task_id, task))["status"]
    assert status["state"] == "pending"
    assert status["taskQueueId"] == queue_id(worker_type)
    assert status["runs"] == [
        {
            "runId": 0,
            "state": "pending",
            "reasonCreated": "scheduled",
            "scheduled": status["runs"][0]["scheduled"],
        }
    ]
    definition = await queue.task(task_id)
    assert definition["priority"] == "high"
    assert definition["taskQueueId"] == queue_id(worker_type)
    assert definition["dependencies"] == [] and definition["requires"] == "all-completed"
    assert definition["created"].endswith("Z") and len(definition["created"]) == 24


async def test_create_task_is_idempotent_and_conflicts_on_difference(
    tc: Deployment, queue: Any, worker_type: str
) -> None:
    task_id = slugid.nice()
    task = tc.make_task(workerType=worker_type)
    first = await queue.createTask(task_id, task)
    again = await queue.createTask(task_id, task)
    assert again["status"] == first["status"]
    body = await refused(queue.createTask(task_id, {**task, "retries": 3}), 409, "RequestConflict")
    assert set(body["requestInfo"]) == {"method", "params", "payload", "time"}


async def test_create_task_from_task_queue_id_only(tc: Deployment, queue: Any, worker_type: str) -> None:
    task = tc.make_task()
    del task["provisionerId"], task["workerType"]
    task["taskQueueId"] = f"prov-x/{worker_type}"
    definition_status = (await queue.createTask(slugid.nice(), task))["status"]
    assert (definition_status["provisionerId"], definition_status["workerType"]) == ("prov-x", worker_type)


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"payload": "not an object"}, "payload"),
        ({"retries": 100}, "retries"),
        ({"unknownField": 1}, "unknownField"),
        ({"deadline": "tomorrow"}, "deadline"),
        ({"priority": "urgent"}, "priority"),
    ],
)
async def test_create_task_rejects_malformed_bodies(
    tc: Deployment, queue: Any, worker_type: str, change: dict[str, Any], fragment: str
) -> None:
    task = {**tc.make_task(workerType=worker_type), **change}
    body = await refused(queue.createTask(slugid.nice(), task), 400, "InputValidationError")
    assert fragment in body["message"]


@pytest.mark.parametrize(
    "change",
    [
        {"deadline": from_now(-60)},
        {"created": from_now(-3600)},
        {"deadline": from_now(6 * 24 * 3600)},
        {"expires": from_now(60)},
        {"taskQueueId": "other/queue"},
    ],
)
async def test_create_task_rejects_bad_times_and_ids(
    tc: Deployment, queue: Any, worker_type: str, change: dict[str, Any]
) -> None:
    task = {**tc.make_task(workerType=worker_type), **change}
    await refused(queue.createTask(slugid.nice(), task), 400, "InputError")


async def test_unknown_task_is_404_and_bad_task_id_is_400(queue: Any) -> None:
    await refused(queue.status(slugid.nice()), 404, "ResourceNotFound")
    await refused(queue.task(slugid.nice()), 404, "ResourceNotFound")
    await refused(queue.task("not-a-slugid"), 400, "InvalidRequestArguments")


async def test_create_task_needs_its_scopes(tc: Deployment, clients: Clients, worker_type: str) -> None:
    token = await tc.create_client(
        "tests/creator-" + worker_type, [f"queue:create-task:high:tc-local/{worker_type}"]
    )
    creator = clients.make("queue", {"clientId": "tests/creator-" + worker_type, "accessToken": token})
    body = await refused(
        creator.createTask(slugid.nice(), tc.make_task(workerType=worker_type, priority="high")),
        403,
        "InsufficientScopes",
    )
    assert "queue:scheduler-id:tc-local-tests" in body["message"]
    granted = await tc.create_client(
        "tests/creator-" + worker_type,
        [
            f"queue:create-task:high:tc-local/{worker_type}",
            "queue:scheduler-id:tc-local-tests",
            "queue:create-task:project:none",
            "secret:scope",
        ],
    )
    creator = clients.make("queue", {"clientId": "tests/creator-" + worker_type, "accessToken": granted})
    task = tc.make_task(workerType=worker_type, priority="high", scopes=["secret:scope"])
    assert (await creator.createTask(slugid.nice(), task))["status"]["state"] == "pending"


async def test_priority_scopes_allow_lower_priorities_only(
    tc: Deployment, clients: Clients, worker_type: str
) -> None:
    client_id = f"tests/prio-{worker_type}"
    scopes = [
        f"queue:create-task:medium:tc-local/{worker_type}",
        "queue:scheduler-id:tc-local-tests",
        "queue:create-task:project:none",
    ]
    creator = clients.make(
        "queue", {"clientId": client_id, "accessToken": await tc.create_client(client_id, scopes)}
    )
    await creator.createTask(slugid.nice(), tc.make_task(workerType=worker_type, priority="low"))
    high = tc.make_task(workerType=worker_type, priority="high")
    await refused(creator.createTask(slugid.nice(), high), 403, "InsufficientScopes")
    scoped = tc.make_task(workerType=worker_type, scopes=["x:y"])
    await refused(creator.createTask(slugid.nice(), scoped), 403, "InsufficientScopes")


async def test_cancel_pending_and_unscheduled_tasks(tc: Deployment, queue: Any, worker_type: str) -> None:
    pending = slugid.nice()
    await queue.createTask(pending, tc.make_task(workerType=worker_type))
    status = (await queue.cancelTask(pending))["status"]
    assert status["state"] == "exception"
    assert status["runs"][0]["reasonResolved"] == "canceled"
    blocker = slugid.nice()
    await queue.createTask(blocker, tc.make_task(workerType=worker_type))
    waiting = slugid.nice()
    await queue.createTask(waiting, tc.make_task(workerType=worker_type, dependencies=[blocker]))
    status = (await queue.cancelTask(waiting))["status"]
    assert status["runs"] == [
        {
            **status["runs"][0],
            "state": "exception",
            "reasonCreated": "exception",
            "reasonResolved": "canceled",
        }
    ]
    assert (await queue.cancelTask(waiting))["status"] == status  # already resolved: unchanged


async def test_cancel_running_task_makes_worker_calls_conflict(
    tc: Deployment, clients: Clients, queue: Any, worker_type: str
) -> None:
    run = await start_run(tc, clients, queue, worker_type)
    await queue.cancelTask(run.task_id)
    for call in (run.queue.reclaimTask(run.task_id, 0), run.queue.reportCompleted(run.task_id, 0)):
        await refused(call, 409, "RequestConflict")
    # Logs may still be uploaded after cancellation.
    await run.create("public/logs/live_backing.log", storageType="s3", contentType="text/plain")


async def test_rerun_and_schedule(tc: Deployment, queue: Any, worker_type: str) -> None:
    task_id = slugid.nice()
    await queue.createTask(task_id, tc.make_task(workerType=worker_type))
    assert (await queue.rerunTask(task_id))["status"]["runs"][-1]["runId"] == 0  # still pending: no-op
    await claim_one(queue, queue_id(worker_type))
    await queue.reportFailed(task_id, 0)
    status = (await queue.rerunTask(task_id))["status"]
    assert status["state"] == "pending"
    assert status["runs"][1]["reasonCreated"] == "rerun"
    blocker, blocked = slugid.nice(), slugid.nice()
    await queue.createTask(blocker, tc.make_task(workerType=worker_type))
    await queue.createTask(blocked, tc.make_task(workerType=worker_type, dependencies=[blocker]))
    assert (await queue.status(blocked))["status"]["state"] == "unscheduled"
    status = (await queue.scheduleTask(blocked))["status"]
    assert status["state"] == "pending" and status["runs"][0]["reasonCreated"] == "scheduled"


async def test_list_task_group_pages(tc: Deployment, queue: Any, worker_type: str) -> None:
    group = slugid.nice()
    ids = [slugid.nice() for _ in range(3)]
    for task_id in ids:
        await queue.createTask(task_id, tc.make_task(workerType=worker_type, taskGroupId=group))
    first = await queue.listTaskGroup(group, query={"limit": 2})
    # Upstream orders members by taskId (so that pages never overlap) and may end on an empty page.
    listed = [t["status"]["taskId"] for t in first["tasks"]]
    token = first.get("continuationToken")
    while token:
        page = await queue.listTaskGroup(group, query={"limit": 2, "continuationToken": token})
        listed += [t["status"]["taskId"] for t in page["tasks"]]
        token = page.get("continuationToken")
    assert listed == sorted(ids)
    assert (first["taskGroupId"], first["schedulerId"]) == (group, "tc-local-tests")
    group_info = await queue.getTaskGroup(group)
    assert group_info == {"taskGroupId": group, "schedulerId": "tc-local-tests", "expires": first["expires"]}
    await refused(queue.listTaskGroup(slugid.nice()), 404, "ResourceNotFound")
    await refused(queue.getTaskGroup(slugid.nice()), 404, "ResourceNotFound")


async def test_task_group_scheduler_conflict(tc: Deployment, queue: Any, worker_type: str) -> None:
    group = slugid.nice()
    await queue.createTask(slugid.nice(), tc.make_task(workerType=worker_type, taskGroupId=group))
    other = tc.make_task(workerType=worker_type, taskGroupId=group, schedulerId="other")
    await refused(queue.createTask(slugid.nice(), other), 409, "RequestConflict")


async def test_pending_counts_and_bulk_reads(tc: Deployment, queue: Any, worker_type: str) -> None:
    ids = [slugid.nice() for _ in range(3)]
    for task_id in ids:
        await queue.createTask(task_id, tc.make_task(workerType=worker_type))
    assert (await queue.pendingTasks(queue_id(worker_type)))["pendingTasks"] == 3
    await claim_one(queue, queue_id(worker_type))
    counts = await queue.taskQueueCounts(queue_id(worker_type))
    assert (counts["pendingTasks"], counts["claimedTasks"]) == (2, 1)
    statuses = await queue.statuses({"taskIds": ids})
    assert [s["taskId"] for s in statuses["statuses"]] == ids
    tasks = await queue.tasks({"taskIds": ids[:1]})
    assert tasks["tasks"][0]["task"]["workerType"] == worker_type


async def test_dependencies_all_completed_and_all_resolved(
    tc: Deployment, queue: Any, worker_type: str
) -> None:
    first, second = slugid.nice(), slugid.nice()
    await queue.createTask(first, tc.make_task(workerType=worker_type))
    await queue.createTask(second, tc.make_task(workerType=worker_type))
    needs_success = slugid.nice()
    needs_resolution = slugid.nice()
    await queue.createTask(needs_success, tc.make_task(workerType=worker_type, dependencies=[first, second]))
    await queue.createTask(
        needs_resolution,
        tc.make_task(workerType=worker_type, dependencies=[first, second], requires="all-resolved"),
    )
    dependents = await queue.listDependentTasks(first)
    assert {t["status"]["taskId"] for t in dependents["tasks"]} == {needs_success, needs_resolution}
    claims = await queue.claimWork(queue_id(worker_type), {"workerGroup": "g", "workerId": "w", "tasks": 2})
    assert {c["status"]["taskId"] for c in claims["tasks"]} == {first, second}
    await queue.reportCompleted(first, 0)
    assert (await queue.status(needs_success))["status"]["state"] == "unscheduled"
    await queue.reportFailed(second, 0)
    assert (await queue.status(needs_success))["status"]["state"] == "unscheduled"
    assert (await queue.status(needs_resolution))["status"]["state"] == "pending"


async def test_dependencies_must_exist(tc: Deployment, queue: Any, worker_type: str) -> None:
    task_id, missing = slugid.nice(), slugid.nice()
    task = tc.make_task(workerType=worker_type, dependencies=[missing])
    body = await refused(queue.createTask(task_id, task), 400, "InputError")
    assert missing in body["message"]
    # As upstream, the task was stored all the same and stays unscheduled until its deadline.
    assert (await queue.status(task_id))["status"]["state"] == "unscheduled"
    await refused(queue.createTask(task_id, task), 400, "InputError")  # a retry: the same answer
    short_lived = slugid.nice()
    await queue.createTask(short_lived, tc.make_task(workerType=worker_type, expires=from_now(1800)))
    late = tc.make_task(workerType=worker_type, dependencies=[short_lived], deadline=from_now(3600))
    body = await refused(queue.createTask(slugid.nice(), late), 400, "InputError")
    assert short_lived in body["message"]


async def test_completed_dependency_schedules_new_task_at_once(
    tc: Deployment, queue: Any, worker_type: str
) -> None:
    done = slugid.nice()
    await queue.createTask(done, tc.make_task(workerType=worker_type))
    await claim_one(queue, queue_id(worker_type))
    await queue.reportCompleted(done, 0)
    later = slugid.nice()
    status = (await queue.createTask(later, tc.make_task(workerType=worker_type, dependencies=[done])))[
        "status"
    ]
    assert status["state"] == "pending"
