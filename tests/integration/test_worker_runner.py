"""`run --with-worker-runner`: the test plays worker-runner on the worker's stdin/stdout."""

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from generic_worker.exitcodes import ExitCode

from .harness import GW, wait_for

SCRIPT = Path(sys.executable).parent / "generic-worker"


class Runner:
    """The runner's side: writes `~{...}` lines to the worker, collects what it sends back."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.messages: list[dict[str, Any]] = []
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, gw: GW, **config: Any) -> "Runner":
        path = gw.write_config(gw.tmp / "gw.json", **config)
        proc = await asyncio.create_subprocess_exec(
            str(SCRIPT), "run", "--config", str(path), "--with-worker-runner", cwd=gw.tmp,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            if line.startswith(b"~"):
                self.messages.append(json.loads(line[1:]))

    async def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"~" + json.dumps(message).encode() + b"\n")
        await self.proc.stdin.drain()

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def log_text(self) -> str:
        return "\n".join(m["body"]["textPayload"] for m in self.of_type("log"))

    async def finish(self) -> tuple[int, str]:
        assert self.proc.stderr is not None
        stderr = await asyncio.wait_for(self.proc.stderr.read(), 60)
        await asyncio.wait_for(self.proc.wait(), 60)
        await self.reader
        assert self.proc.returncode is not None
        return self.proc.returncode, stderr.decode()


ALL = ["error-report", "graceful-termination", "log", "new-credentials", "shutdown"]


async def test_handshake_and_log_messages(gw: GW):
    task_id = await gw.submit({"command": [["echo", "hi"]], "maxRunTime": 30})
    runner = await Runner.start(gw)
    await runner.send({"type": "welcome", "capabilities": ALL})
    code, stderr = await runner.finish()
    assert code == ExitCode.TASKS_COMPLETE
    assert runner.of_type("hello") == [{"type": "hello", "capabilities": ALL}]
    assert f"Claimed task {task_id} run 0" in runner.log_text()
    assert f"Claimed task {task_id}" not in stderr  # logs went through the protocol
    assert await gw.resolution(task_id) == "completed/completed"


async def test_without_log_capability_logs_stay_on_stderr(gw: GW):
    task_id = await gw.submit({"command": [["echo", "hi"]], "maxRunTime": 30})
    runner = await Runner.start(gw)
    await runner.send({"type": "welcome", "capabilities": ["graceful-termination"]})
    code, stderr = await runner.finish()
    assert code == ExitCode.TASKS_COMPLETE
    assert runner.of_type("log") == []
    assert f"Claimed task {task_id} run 0" in stderr


@pytest.mark.parametrize(
    "finish_tasks,script,resolution",
    [
        (True, "touch started; sleep 1; echo done", "completed/completed"),
        (False, "touch started; exec sleep 600", "exception/worker-shutdown"),
    ],
)
async def test_graceful_termination(gw: GW, finish_tasks: bool, script: str, resolution: str):
    task_id = await gw.submit({"command": [["/bin/sh", "-c", script]], "maxRunTime": 900})
    runner = await Runner.start(gw, numberOfTasksToRun=0)
    await runner.send({"type": "welcome", "capabilities": ALL})
    await wait_for(lambda: any(gw.tmp.glob("tasks/task_*/started")))
    await runner.send({"type": "graceful-termination", "finish-tasks": finish_tasks})
    code, _ = await runner.finish()
    assert code == ExitCode.WORKER_SHUTDOWN  # with or without finishing the running tasks
    assert await gw.resolution(task_id) == resolution


async def test_new_credentials_replace_the_workers(gw: GW):
    good = {"client-id": gw.raw_config["clientId"], "access-token": gw.raw_config["accessToken"]}
    task_id = await gw.submit({"command": [["true"]], "maxRunTime": 30})
    runner = await Runner.start(gw, accessToken="not-the-right-token")
    await runner.send({"type": "welcome", "capabilities": ALL})
    await wait_for(lambda: "Could not claim work" in runner.log_text(), timeout=30)
    await runner.send({"type": "new-credentials", **good})
    code, _ = await runner.finish()
    assert code == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "completed/completed"


async def test_shutdown_goes_through_the_runner(gw: GW):
    record = gw.tmp / "shutdown-called"
    script = gw.tmp / "fake-shutdown"
    script.write_text(f"#!/bin/sh\ntouch {record}\n")
    script.chmod(0o755)
    runner = await Runner.start(
        gw, numberOfTasksToRun=0, idleTimeoutSecs=1, shutdownMachineOnIdle=True, shutdownCommand=str(script)
    )
    await runner.send({"type": "welcome", "capabilities": ALL})
    code, _ = await runner.finish()
    assert code == ExitCode.IDLE_TIMEOUT
    assert runner.of_type("shutdown") == [{"type": "shutdown"}]
    assert not record.exists()


async def register_with_worker_manager(gw: GW) -> dict[str, str]:
    """Create a static worker pool and worker for this test's queue, register it: its credentials."""
    import secrets

    import aiohttp
    import taskcluster.aio

    from .harness import PROVISIONER, WORKER_GROUP, WORKER_ID

    pool = f"{PROVISIONER}/{gw.worker_type}"
    static_secret = secrets.token_urlsafe(33)[:44]
    async with aiohttp.ClientSession() as session:
        wm = taskcluster.aio.WorkerManager(gw.tc.options(), session=session)
        await wm.createWorkerPool(
            pool,
            {
                "providerId": "static",
                "description": "test pool",
                "owner": "test@example.com",
                "emailOnError": False,
                "config": {},
            },
        )
        worker = {
            "expires": taskcluster.fromNowJSON("1 hour"),
            "providerInfo": {"staticSecret": static_secret},
        }
        await wm.createWorker(pool, WORKER_GROUP, WORKER_ID, worker)
        anonymous = taskcluster.aio.WorkerManager(gw.tc.options(None), session=session)
        registered = await anonymous.registerWorker(
            {
                "workerPoolId": pool,
                "providerId": "static",
                "workerGroup": WORKER_GROUP,
                "workerId": WORKER_ID,
                "workerIdentityProof": {"staticSecret": static_secret},
            }
        )
    creds = dict(registered["credentials"])
    config = {"clientId": creds["clientId"], "accessToken": creds["accessToken"]}
    if creds.get("certificate"):
        config["certificate"] = creds["certificate"]
    return config


async def remove_worker(gw: GW) -> None:
    import aiohttp
    import taskcluster.aio

    from .harness import PROVISIONER, WORKER_GROUP, WORKER_ID

    async with aiohttp.ClientSession() as session:
        wm = taskcluster.aio.WorkerManager(gw.tc.options(), session=session)
        await wm.removeWorker(f"{PROVISIONER}/{gw.worker_type}", WORKER_GROUP, WORKER_ID)


async def test_worker_manager_says_terminate(gw: GW):
    credentials = await register_with_worker_manager(gw)
    task_id = await gw.submit({"command": [["true"]], "maxRunTime": 30})
    runner = await Runner.start(gw, numberOfTasksToRun=0, **credentials)
    await runner.send({"type": "welcome", "capabilities": ALL})

    async def completed() -> bool:
        return await gw.resolution(task_id) == "completed/completed"

    await wait_for(completed, timeout=30)  # registered credentials can claim
    await remove_worker(gw)
    code, _ = await runner.finish()
    assert code == ExitCode.NONCURRENT_DEPLOYMENT_ID
    assert runner.of_type("shutdown") == [{"type": "shutdown"}]  # exit 70 always shuts down
    assert "worker-manager says terminate" in runner.log_text()


async def test_idle_worker_kept_alive_while_worker_manager_wants_it(gw: GW):
    credentials = await register_with_worker_manager(gw)
    runner = await Runner.start(gw, numberOfTasksToRun=0, idleTimeoutSecs=1, **credentials)
    await runner.send({"type": "welcome", "capabilities": ALL})
    kept = "worker-manager wants this worker kept"
    await wait_for(lambda: runner.log_text().count(kept) >= 2, timeout=30)
    assert runner.proc.returncode is None
    await remove_worker(gw)
    code, _ = await runner.finish()
    assert code in (ExitCode.IDLE_TIMEOUT, ExitCode.NONCURRENT_DEPLOYMENT_ID)
