"""Fixtures for artifact uploads against the session's real tc-local: a claimed run, clients, a log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import slugid
from yarl import URL

from generic_worker.artifacts import ArtifactUploader
from generic_worker.config import Config
from generic_worker.engine.tasklog import TaskLog
from generic_worker.tc import Credentials, ServiceFactory
from generic_worker.timefmt import now
from tclocal.testing import RunningTCLocal, unique_worker_type

from .faulty_network import FaultyProxy

EXPIRES = now() + timedelta(days=7)


def factory_for(root_url: str, tclocal: RunningTCLocal) -> ServiceFactory:
    """A ServiceFactory of the worker (root credentials) talking to `root_url`."""
    config = Config(
        root_url=root_url, client_id=tclocal.root_client_id, access_token=tclocal.root_access_token
    )
    return ServiceFactory(config)


@dataclass
class ClaimedRun:
    """A task created and claimed on tc-local; `credentials` are the run's task credentials."""

    task_id: str
    run_id: int
    credentials: Credentials
    credential_calls: int = 0
    overrides: list[Credentials] = field(default_factory=list)

    def current_credentials(self) -> Credentials:
        """What the uploader's `credentials()` returns (counted; an override wins)."""
        self.credential_calls += 1
        return self.overrides[-1] if self.overrides else self.credentials


@pytest.fixture
async def services(tclocal: RunningTCLocal) -> AsyncIterator[ServiceFactory]:
    factory = factory_for(tclocal.root_url, tclocal)
    yield factory
    await factory.close()


@pytest.fixture
async def run(services: ServiceFactory) -> ClaimedRun:
    """A fresh task on its own worker type, claimed by this test as worker g/w."""
    worker_type = unique_worker_type("art")
    queue = services.queue()
    task_id = slugid.nice()
    await queue.createTask(task_id, _task(worker_type))
    claim = await queue.claimWork(
        f"tc-local/{worker_type}", {"tasks": 1, "workerGroup": "g", "workerId": "w"}
    )
    (task,) = claim["tasks"]
    return ClaimedRun(task_id, int(task["runId"]), task["credentials"])


def _task(worker_type: str) -> dict[str, Any]:
    return {
        "provisionerId": "tc-local",
        "workerType": worker_type,
        "schedulerId": "tc-local-tests",
        "taskGroupId": slugid.nice(),
        "created": now().isoformat(),
        "deadline": (now() + timedelta(minutes=30)).isoformat(),
        "expires": (now() + timedelta(days=14)).isoformat(),
        "retries": 1,
        "scopes": [],
        "routes": [],
        "payload": {},
        "metadata": {
            "name": "artifact test",
            "description": "x",
            "owner": "a@example.com",
            "source": "https://x",
        },
    }


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[TaskLog]:
    task_log = TaskLog(tmp_path / "live_backing.log")
    yield task_log
    task_log.close()


@pytest.fixture
async def proxy(tclocal: RunningTCLocal) -> AsyncIterator[FaultyProxy]:
    faulty = FaultyProxy(tclocal.root_url)
    await faulty.start()
    yield faulty
    await faulty.stop()


@pytest.fixture
async def proxied(proxy: FaultyProxy, tclocal: RunningTCLocal) -> AsyncIterator[ServiceFactory]:
    """A ServiceFactory whose every request (API and blob PUTs) goes through `proxy`."""
    factory = factory_for(proxy.url, tclocal)
    yield factory
    await factory.close()


UploaderFactory = Callable[..., ArtifactUploader]


@pytest.fixture
def make_uploader(services: ServiceFactory, run: ClaimedRun, log: TaskLog) -> UploaderFactory:
    """An uploader for the claimed run; keyword arguments override the defaults."""

    def make(**overrides: Any) -> ArtifactUploader:
        options: dict[str, Any] = {
            "services": services,
            "task_id": run.task_id,
            "run_id": run.run_id,
            "credentials": run.current_credentials,
            "log": log,
            "use_object_storage": False,
            "max_retries": 3,
        }
        options.update(overrides)
        return ArtifactUploader(**options)

    return make


@dataclass
class Fetched:
    """An artifact as a client downloads it: final status, headers and the raw (undecoded) body."""

    status: int
    headers: dict[str, str]
    body: bytes
    redirect: str | None


async def fetch(root_url: str, run: ClaimedRun, name: str, follow: bool = True) -> Fetched:
    """GET the artifact through the queue's getArtifact (public/ names need no credentials)."""
    quoted = name.replace("%", "%25").replace("/", "%2F").replace(" ", "%20").replace("+", "%2B")
    url = f"{root_url}/api/queue/v1/task/{run.task_id}/runs/{run.run_id}/artifacts/{quoted}"
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(URL(url, encoded=True), allow_redirects=False) as first:
            location = first.headers.get("Location")
            if not follow or location is None:
                return Fetched(first.status, dict(first.headers), await first.read(), location)
        async with session.get(URL(location, encoded=True)) as final:
            return Fetched(final.status, dict(final.headers), await final.read(), location)
