"""A worker bound to a real tc-local: config, task submission, running the real worker, reading results."""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import slugid
import taskcluster.aio

from generic_worker.config import Config, config_from_mapping
from generic_worker.engine.worker import Worker
from generic_worker.exitcodes import ExitCode
from generic_worker.features import build_features
from generic_worker.local.platform import local_defaults, worker_settings
from tclocal.testing import RunningTCLocal, unique_worker_type

PROVISIONER = "test-provisioner"
WORKER_GROUP = "test-worker-group"
WORKER_ID = "test-worker-id"


def worker_scopes(worker_type: str) -> list[str]:
    """Exactly what a worker needs (its tasks' calls use the task credentials from the claim)."""
    return [
        f"queue:claim-work:{PROVISIONER}/{worker_type}",
        f"queue:worker-id:{WORKER_GROUP}/{WORKER_ID}",
        "queue:status:*",
        "queue:get-task:*",
        # What tc-local (as upstream) checks for purgeRequests: note the double colon.
        f"purge-cache:purge-requests::{PROVISIONER}/{worker_type}",
    ]


class GW:
    """One test's worker pool: a unique worker type on the shared tc-local."""

    def __init__(self, tc: RunningTCLocal, tmp: Path) -> None:
        self.tc = tc
        self.tmp = tmp
        self.worker_type = unique_worker_type()
        token = tc.create_client(f"worker/{self.worker_type}", worker_scopes(self.worker_type))
        self.raw_config: dict[str, Any] = {
            **local_defaults(tmp, tmp),
            **worker_settings(
                tc.root_url,
                f"worker/{self.worker_type}",
                token,
                (PROVISIONER, self.worker_type),
                (WORKER_GROUP, WORKER_ID),
            ),
            "numberOfTasksToRun": 1,
            "idleTimeoutSecs": 60,
            "cleanUpTaskDirs": False,
            "requiredDiskSpaceMegabytes": 16,
            "workerTypeMetadata": {"machine-setup": {"pretend": "metadata"}},
            "instanceType": "p3.enormous",
        }

    def config(self, **overrides: Any) -> Config:
        config, _ = config_from_mapping({**self.raw_config, **overrides})
        return config

    def write_config(self, path: Path, **overrides: Any) -> Path:
        path.write_text(json.dumps({**self.raw_config, **overrides}))
        return path

    def task(self, payload: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
        definition = self.tc.make_task(provisionerId=PROVISIONER, workerType=self.worker_type, **overrides)
        if payload is not None:
            definition["payload"] = payload
        return definition

    def queue(self, session: aiohttp.ClientSession, credentials: Any = None) -> Any:
        options = self.tc.options() if credentials is None else self.tc.options(credentials)
        return taskcluster.aio.Queue(options, session=session)

    async def submit(self, payload: dict[str, Any] | None = None, **overrides: Any) -> str:
        task_id: str = slugid.nice()
        async with aiohttp.ClientSession() as session:
            await self.queue(session).createTask(task_id, self.task(payload, **overrides))
        return task_id

    async def run(self, **overrides: Any) -> ExitCode:
        config = self.config(**overrides)
        worker = Worker(config, build_features(config), state_dir=self.tmp)
        return await worker.run()

    async def status(self, task_id: str) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            return dict((await self.queue(session).status(task_id))["status"])

    async def resolution(self, task_id: str, run_id: int = 0) -> str:
        run = (await self.status(task_id))["runs"][run_id]
        return f"{run['state']}/{run.get('reasonResolved')}"

    async def artifacts(self, task_id: str, run_id: int = 0) -> dict[str, dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            listing = await self.queue(session).listArtifacts(task_id, str(run_id))
        return {a["name"]: a for a in listing["artifacts"]}

    async def fetch(self, task_id: str, name: str, run_id: int = 0) -> tuple[int, dict[str, str], bytes]:
        """GET an artifact through the queue (following redirects), without decompressing."""
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            url = self.queue(session).buildSignedUrl("getArtifact", task_id, str(run_id), name)
            async with session.get(url) as response:
                return response.status, dict(response.headers), await response.read()

    async def content(self, task_id: str, name: str, run_id: int = 0) -> bytes:
        status, headers, body = await self.fetch(task_id, name, run_id)
        assert status == 200, (status, body[:500])
        if headers.get("Content-Encoding") == "gzip":
            return gzip.decompress(body)
        return body

    async def log(self, task_id: str, run_id: int = 0) -> str:
        data: bytes = await self.content(task_id, "public/logs/live_backing.log", run_id)
        return data.decode()

    def task_dirs(self) -> Iterator[Path]:
        return iter(sorted(Path(self.raw_config["tasksDir"]).glob("task_*")))

    def local_log(self) -> str:
        dirs = list(self.task_dirs())
        return (dirs[-1] / "generic-worker" / "live_backing.log").read_text()


async def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> Any:  # noqa: ASYNC109
    """Poll an async or sync predicate until it returns something truthy, or fail after `timeout`."""
    import asyncio
    import inspect
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def run_state(gw: GW, task_id: str, run_id: int = 0) -> str | None:
    runs = (await gw.status(task_id)).get("runs", [])
    return str(runs[run_id]["state"]) if len(runs) > run_id else None


class MeasuredWorker:
    """`generic-worker run` as its own process, with its peak RSS read from /proc while it runs.

    Not `wait4`'s `ru_maxrss`: Linux carries the peak of the pre-exec image (a fork or vfork of
    the test process, which is large) over the exec into it, so that figure is the test's own.
    """

    def __init__(self, proc: Any) -> None:
        self.proc = proc
        self.peak_kib = 0

    @classmethod
    async def start(cls, config: Path, cwd: Path) -> MeasuredWorker:
        import asyncio

        script = Path(sys.executable).parent / "generic-worker"
        proc = await asyncio.create_subprocess_exec(str(script), "run", "--config", str(config), cwd=cwd)
        return cls(proc)

    def _sample(self) -> None:
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return
        for line in status.splitlines():
            if line.startswith("VmHWM:"):  # the current image's high-water mark: monotonic
                self.peak_kib = max(self.peak_kib, int(line.split()[1]))

    async def wait(self, timeout: float = 300) -> int:  # noqa: ASYNC109
        import asyncio

        async with asyncio.timeout(timeout):
            while self.proc.returncode is None:
                self._sample()
                try:
                    await asyncio.wait_for(asyncio.shield(self.proc.wait()), 0.05)
                except TimeoutError:
                    continue
        return int(self.proc.returncode)

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / 1024
