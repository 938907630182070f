"""A restart on the same data directory keeps tasks, runs, artifacts, clients, roles, secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import slugid
import taskcluster
import taskcluster.aio

from tclocal.core.timestamps import from_now
from tclocal.testing import running_tclocal, unique_worker_type

pytestmark = pytest.mark.tclocal_only("restarts a tc-local on its data directory")


async def _first_life(options: dict[str, Any], task: dict[str, Any], worker_type: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        queue = taskcluster.aio.Queue(options, session=session)
        auth = taskcluster.aio.Auth(options, session=session)
        secrets = taskcluster.aio.Secrets(options, session=session)
        task_id = slugid.nice()
        await queue.createTask(task_id, task)
        claim = (
            await queue.claimWork(
                f"tc-local/{worker_type}", {"workerGroup": "g", "workerId": "w", "tasks": 1}
            )
        )["tasks"][0]
        created = await queue.createArtifact(
            task_id,
            0,
            "public/kept.txt",
            {"storageType": "s3", "contentType": "text/plain", "expires": task["expires"]},
        )
        async with session.put(created["putUrl"], data=b"kept", headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 200
        client = await auth.createClient(
            "tests/survivor", {"expires": from_now(3600), "description": "d", "scopes": ["custom:kept"]}
        )
        await auth.createRole("project:kept", {"description": "d", "scopes": ["custom:role"]})
        await secrets.set("kept/secret", {"secret": {"v": 1}, "expires": from_now(3600)})
        return {"taskId": task_id, "claim": claim, "token": client["accessToken"]}


async def _second_life(options: dict[str, Any], first: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as session:
        queue = taskcluster.aio.Queue(options, session=session)
        task_id = first["taskId"]
        status = (await queue.status(task_id))["status"]
        assert status["state"] == "running" and status["runs"][0]["workerId"] == "w"
        found = await queue.getArtifact(task_id, 0, "public/kept.txt")
        async with session.get(found["url"]) as response:
            assert await response.read() == b"kept"
        survivor = {**options, "credentials": {"clientId": "tests/survivor", "accessToken": first["token"]}}
        assert (
            "custom:kept" in (await taskcluster.aio.Auth(survivor, session=session).currentScopes())["scopes"]
        )
        auth = taskcluster.aio.Auth(options, session=session)
        assert (await auth.role("project:kept"))["scopes"] == ["custom:role"]
        secrets = taskcluster.aio.Secrets(options, session=session)
        assert (await secrets.get("kept/secret"))["secret"] == {"v": 1}
        # The run's temporary credentials, issued before the restart, still work.
        as_task = taskcluster.aio.Queue(
            {**options, "credentials": first["claim"]["credentials"]}, session=session
        )
        assert (await as_task.reportCompleted(task_id, 0))["status"]["state"] == "completed"


async def test_restart_keeps_everything(tmp_path: Path) -> None:
    worker_type = unique_worker_type()
    with running_tclocal(tmp_path, claim_work_wait=0.5) as first_service:
        options = first_service.options()
        first = await _first_life(options, first_service.make_task(workerType=worker_type), worker_type)
        first_root = first_service.root_access_token
    with running_tclocal(tmp_path, claim_work_wait=0.5) as second_service:
        assert second_service.root_access_token == first_root  # kept in the data directory
        await _second_life(second_service.options(), first)
    assert oct((tmp_path / "secrets.json").stat().st_mode & 0o777) == "0o600"


def test_given_root_token_and_static_clients_file(tmp_path: Path) -> None:
    clients_file = tmp_path / "clients.json"
    clients_file.write_text(
        json.dumps([{"clientId": "static/ci", "accessToken": "ci-token-123", "scopes": ["custom:ci"]}])
    )
    with running_tclocal(
        tmp_path / "data", root_access_token="root-token-given", clients_file=clients_file
    ) as service:
        assert service.root_access_token == "root-token-given"
        auth = taskcluster.Auth(service.options({"clientId": "static/ci", "accessToken": "ci-token-123"}))
        assert "custom:ci" in auth.currentScopes()["scopes"]
        root = taskcluster.Auth(service.options())
        assert "*" in root.currentScopes()["scopes"]
    assert "root-token-given" not in (tmp_path / "data" / "secrets.json").read_text()
