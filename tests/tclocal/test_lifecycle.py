"""Time-driven behaviour on a tc-local with short claims: claim expiry, retries and deadlines.

Nothing sleeps for a fixed time: the service is configured with a 0.5 s claim timeout and the
tests poll the task status until the reaper has acted (with a deadline).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import slugid
import taskcluster
import taskcluster.aio
from taskcluster.exceptions import TaskclusterRestFailure

from tclocal.core.timestamps import from_now
from tclocal.testing import RunningTCLocal, running_tclocal, unique_worker_type

from .conftest import wait_for
from .upstream import Checked

pytestmark = pytest.mark.tclocal_only("its own tc-local with shortened expiry and reaper timings")


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTCLocal]:
    with running_tclocal(
        tmp_path_factory.mktemp("tclocal-fast"),
        claim_timeout=0.5,
        claim_work_wait=0.5,
        reaper_interval=0.2,
    ) as service:
        yield service


@pytest.fixture
async def fast_queue(fast: RunningTCLocal) -> AsyncIterator[Any]:
    async with aiohttp.ClientSession() as session:
        yield Checked(taskcluster.aio.Queue({**fast.options(), "maxRetries": 0}, session=session))


async def _status(queue: Any, task_id: str) -> dict[str, Any]:
    status: dict[str, Any] = (await queue.status(task_id))["status"]
    return status


async def _claim(queue: Any, worker_type: str) -> dict[str, Any]:
    reply = await queue.claimWork(
        f"tc-local/{worker_type}", {"workerGroup": "g", "workerId": "w", "tasks": 1}
    )
    assert len(reply["tasks"]) == 1
    claim: dict[str, Any] = reply["tasks"][0]
    return claim


async def test_claim_expiry_retries_then_resolves(fast: RunningTCLocal, fast_queue: Any) -> None:
    worker_type = unique_worker_type()
    task_id = slugid.nice()
    await fast_queue.createTask(task_id, fast.make_task(workerType=worker_type, retries=1))
    await _claim(fast_queue, worker_type)
    status = await wait_for(lambda: _status(fast_queue, task_id), lambda s: len(s["runs"]) == 2)
    assert status["runs"][0]["state"] == "exception"
    assert status["runs"][0]["reasonResolved"] == "claim-expired"
    assert status["runs"][1] == {**status["runs"][1], "state": "pending", "reasonCreated": "retry"}
    assert status["retriesLeft"] == 0
    with pytest.raises(TaskclusterRestFailure) as err:
        await fast_queue.reclaimTask(task_id, 0)
    assert err.value.status_code == 409
    await _claim(fast_queue, worker_type)
    status = await wait_for(lambda: _status(fast_queue, task_id), lambda s: s["state"] == "exception")
    assert [r["reasonResolved"] for r in status["runs"]] == ["claim-expired", "claim-expired"]


async def test_reclaim_keeps_a_run_alive(fast: RunningTCLocal, fast_queue: Any) -> None:
    worker_type = unique_worker_type()
    task_id = slugid.nice()
    await fast_queue.createTask(task_id, fast.make_task(workerType=worker_type, retries=0))
    claim = await _claim(fast_queue, worker_type)
    taken_until = claim["takenUntil"]
    for _ in range(4):  # each reclaim must land before the previous takenUntil passes
        reply = await fast_queue.reclaimTask(task_id, 0)
        assert reply["takenUntil"] >= taken_until
        taken_until = reply["takenUntil"]
        status = await _status(fast_queue, task_id)
        if status["state"] != "running":
            pytest.skip("machine too slow to reclaim within 0.5 s")
    assert (await fast_queue.reportCompleted(task_id, 0))["status"]["state"] == "completed"


async def test_deadline_resolves_pending_unscheduled_and_running(
    fast: RunningTCLocal, fast_queue: Any
) -> None:
    worker_type = unique_worker_type()
    running, pending, blocked, after = (slugid.nice() for _ in range(4))
    soon = from_now(1.0)
    await fast_queue.createTask(running, fast.make_task(workerType=worker_type, deadline=soon))
    await _claim(fast_queue, worker_type)
    await fast_queue.reclaimTask(running, 0)
    await fast_queue.createTask(pending, fast.make_task(workerType=worker_type, deadline=soon))
    await fast_queue.createTask(
        blocked, fast.make_task(workerType=worker_type, deadline=soon, dependencies=[pending])
    )
    await fast_queue.createTask(
        after,
        fast.make_task(workerType=worker_type, dependencies=[blocked], requires="all-resolved"),
    )
    for task_id in (running, pending, blocked):
        probe = functools.partial(_status, fast_queue, task_id)
        status = await wait_for(probe, lambda s: s["state"] == "exception")
        assert status["runs"][-1]["reasonResolved"] in ("deadline-exceeded", "claim-expired")
    blocked_status = await _status(fast_queue, blocked)
    assert blocked_status["runs"] == [
        {**blocked_status["runs"][0], "reasonCreated": "exception", "reasonResolved": "deadline-exceeded"}
    ]
    assert (await _status(fast_queue, after))["state"] == "pending"
    with pytest.raises(TaskclusterRestFailure) as err:
        await fast_queue.cancelTask(pending)
    assert err.value.status_code == 409


def test_artifacts_after_exception_only_within_the_grace_period(tmp_path: Path) -> None:
    """Logs may follow an exception resolution, but only for `artifact_grace_after_exception`."""
    with running_tclocal(tmp_path, claim_work_wait=0.5, artifact_grace_after_exception=0.0) as service:
        queue = taskcluster.Queue(service.options())
        worker_type = unique_worker_type()
        task_id = slugid.nice()
        task = service.make_task(workerType=worker_type, retries=0)
        queue.createTask(task_id, task)
        queue.claimWork(f"tc-local/{worker_type}", {"workerGroup": "g", "workerId": "w", "tasks": 1})
        queue.reportException(task_id, 0, {"reason": "malformed-payload"})
        request = {"storageType": "s3", "contentType": "text/plain", "expires": task["expires"]}
        with pytest.raises(TaskclusterRestFailure) as err:
            queue.createArtifact(task_id, 0, "public/logs/live_backing.log", request)
        assert err.value.status_code == 409


async def test_stop_answers_waiting_long_polls(tmp_path: Path) -> None:
    """Stopping does not wait for claimWork long-polls to time out: they get an empty answer."""
    async with aiohttp.ClientSession() as session:
        with running_tclocal(tmp_path, claim_work_wait=60.0) as service:
            queue = taskcluster.aio.Queue({**service.options(), "maxRetries": 0}, session=session)
            worker_type = unique_worker_type()
            claim = asyncio.create_task(
                queue.claimWork(f"tc-local/{worker_type}", {"workerGroup": "g", "workerId": "w", "tasks": 1})
            )
            ctx = service.server.ctx
            assert ctx is not None

            async def waiting() -> int:
                return ctx.notifier.waiting(f"tc-local/{worker_type}")

            await wait_for(waiting, lambda n: n == 1)
        # The service has stopped (the with block joined its thread) well before 60 s.
        assert await asyncio.wait_for(claim, 10) == {"tasks": []}


async def test_expired_tasks_artifacts_and_blobs_are_deleted(tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as session:
        with running_tclocal(
            tmp_path, claim_work_wait=0.5, reaper_interval=0.2, expiry_interval=0.2
        ) as service:
            queue = taskcluster.aio.Queue({**service.options(), "maxRetries": 0}, session=session)
            worker_type = unique_worker_type()
            task_id = slugid.nice()
            task = service.make_task(workerType=worker_type, deadline=from_now(1), expires=from_now(2))
            await queue.createTask(task_id, task)
            await _claim(queue, worker_type)
            request = {"storageType": "s3", "contentType": "text/plain", "expires": task["expires"]}
            created = await queue.createArtifact(task_id, 0, "public/short-lived.txt", request)
            async with session.put(created["putUrl"], data=b"x", headers={"Content-Type": "text/plain"}) as r:
                assert r.status == 200
            url = (await queue.getArtifact(task_id, 0, "public/short-lived.txt"))["url"]
            await queue.reportCompleted(task_id, 0)

            async def gone() -> int:
                try:
                    await queue.status(task_id)
                except TaskclusterRestFailure as err:
                    return int(err.status_code)
                return 200

            assert await wait_for(gone, lambda code: code == 404) == 404
            async with session.get(url) as response:  # the signed URL is still valid; the body is not
                assert response.status == 404
