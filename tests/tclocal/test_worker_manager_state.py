"""worker-manager state: it survives a restart, and what has expired is pruned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
import slugid
import taskcluster.aio

from tclocal import expiry
from tclocal.core.db import Database
from tclocal.core.timestamps import to_iso
from tclocal.testing import running_tclocal, unique_worker_type
from tclocal.worker_manager import store

pytestmark = pytest.mark.tclocal_only("restarts a tc-local and runs its expiry job")

SECRET = "a" * 44
REPORT = {"workerGroup": "g", "workerId": "w", "kind": "boot", "title": "t", "description": "d", "extra": {}}


def _registration(pool_id: str) -> dict[str, Any]:
    """A registerWorker body for worker g/w of `pool_id`."""
    return {
        "workerPoolId": pool_id,
        "providerId": "static",
        "workerGroup": "g",
        "workerId": "w",
        "workerIdentityProof": {"staticSecret": SECRET},
    }


def _pool_body(config: dict[str, Any]) -> dict[str, Any]:
    """A createWorkerPool body."""
    return {
        "providerId": "static",
        "description": "",
        "config": config,
        "owner": "a@b.c",
        "emailOnError": False,
    }


async def _first_life(options: dict[str, Any], pool_id: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        manager = taskcluster.aio.WorkerManager(options, session=session)
        await manager.createWorkerPool(pool_id, _pool_body({"workerConfig": {"kept": True}}))
        worker = {"expires": taskcluster.fromNowJSON("1 day"), "providerInfo": {"staticSecret": SECRET}}
        await manager.createWorker(pool_id, "g", "w", worker)
        anonymous = taskcluster.aio.WorkerManager({"rootUrl": options["rootUrl"]}, session=session)
        registered: dict[str, Any] = await anonymous.registerWorker(_registration(pool_id))
        as_worker = taskcluster.aio.WorkerManager(
            {**options, "credentials": {**registered["credentials"]}}, session=session
        )
        await as_worker.reportWorkerError(pool_id, REPORT)
        return registered


async def _second_life(options: dict[str, Any], pool_id: str, registered: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as session:
        manager = taskcluster.aio.WorkerManager(options, session=session)
        assert (await manager.workerPool(pool_id))["config"]["workerConfig"] == {"kept": True}
        assert (await manager.worker(pool_id, "g", "w"))["state"] == "running"
        assert len((await manager.listWorkerPoolErrors(pool_id))["workerPoolErrors"]) == 1
        # The credentials issued before the restart still work, and so does the secret.
        as_worker = taskcluster.aio.WorkerManager(
            {**options, "credentials": {**registered["credentials"]}}, session=session
        )
        assert (await as_worker.shouldWorkerTerminate(pool_id, "g", "w"))["terminate"] is False
        renewed = await as_worker.reregisterWorker(
            {"workerPoolId": pool_id, "workerGroup": "g", "workerId": "w", "secret": registered["secret"]}
        )
        assert len(renewed["secret"]) == 44


async def test_pools_workers_and_errors_survive_a_restart(tmp_path: Path) -> None:
    pool_id = f"tc-local/{unique_worker_type()}"
    with running_tclocal(tmp_path) as tc:
        registered = await _first_life(tc.options(), pool_id)
    with running_tclocal(tmp_path) as tc:
        await _second_life(tc.options(), pool_id, registered)


async def test_expired_workers_old_errors_and_deleted_pools_are_pruned(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.sqlite")
    await db.open()
    try:
        t0, lifetime = 1_000_000.0, 600
        config = {"lifecycle": {"reregistrationTimeout": lifetime}}
        worker = _registration("p/kept")
        created = {"expires": to_iso(t0 + lifetime), "providerInfo": {"staticSecret": SECRET}}
        for pool in ("p/kept", "p/deleted"):
            await db.run(lambda c, pool=pool: store.create_pool(c, pool, _pool_body(config), t0))  # type: ignore[misc]
            await db.run(lambda c, pool=pool: store.create_worker(c, (pool, "g", "w"), created, t0))  # type: ignore[misc]
        await db.run(lambda c: store.register(c, worker, slugid.nice(), t0))
        await db.run(lambda c: store.register(c, {**worker, "workerPoolId": "p/deleted"}, slugid.nice(), t0))
        await db.run(lambda c: store.report_error(c, "p/kept", slugid.nice(), REPORT, t0))
        await db.run(lambda c: store.delete_pool(c, "p/deleted", t0))

        # Until the workers' records expire (their createWorker `expires`), everything stays.
        just_before = t0 + lifetime - 1
        await db.run(lambda c: store.prune(c, just_before))
        assert await db.run(lambda c: store.get_worker(c, "p/kept", "g", "w")) is not None
        assert await db.run(lambda c: store.get_pool(c, "p/deleted"))

        after = t0 + store.ERROR_RETENTION + 1
        await db.run(lambda c: expiry.expire(c, after))  # the hourly expiry job prunes them
        assert await db.run(lambda c: store.list_workers(c, "p/kept", None, None, 0, 10)) == []
        assert await db.run(lambda c: store.list_errors(c, "p/kept", None, 0, 10)) == []
        assert [p["workerPoolId"] for p in await db.run(lambda c: store.list_pools(c, 0, 10))] == ["p/kept"]
    finally:
        await db.close()
