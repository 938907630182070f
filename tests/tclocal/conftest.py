"""Fixtures for tc-local's own tests: real services on loopback, official clients, polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import slugid
import taskcluster.aio

from tclocal.testing import RunningTCLocal, running_tclocal, unique_worker_type

from .upstream import Checked

T = TypeVar("T")
CLIENTS = {
    "queue": taskcluster.aio.Queue,
    "auth": taskcluster.aio.Auth,
    "object": taskcluster.aio.Object,
    "purge-cache": taskcluster.aio.PurgeCache,
    "secrets": taskcluster.aio.Secrets,
    "index": taskcluster.aio.Index,
    "worker-manager": taskcluster.aio.WorkerManager,
}


@pytest.fixture(scope="session")
def tc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTCLocal]:
    """One tc-local for the tc-local tests, with a short claimWork long-poll."""
    data_dir: Path = tmp_path_factory.mktemp("tclocal-contract")
    with running_tclocal(data_dir, claim_work_wait=2.0) as service:
        yield service


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One HTTP session per test, shared by its clients."""
    async with aiohttp.ClientSession() as http:
        yield http


class Clients:
    """Official aio clients for every service, with upstream response checking."""

    def __init__(self, tc: RunningTCLocal, session: aiohttp.ClientSession) -> None:
        self.tc = tc
        self.session = session

    def make(self, service: str, credentials: Any = "root", **options: Any) -> Any:
        """A checked client for `service` (root credentials unless given; None = anonymous)."""
        opts = self.tc.options() if credentials == "root" else self.tc.options(credentials)
        opts.update(options)
        opts.setdefault("maxRetries", 0)
        return Checked(CLIENTS[service](opts, session=self.session))


@pytest.fixture
def clients(tc: RunningTCLocal, session: aiohttp.ClientSession) -> Clients:
    """Client factory bound to the session tc-local."""
    return Clients(tc, session)


@pytest.fixture
def queue(clients: Clients) -> Any:
    """The queue, as root."""
    return clients.make("queue")


@pytest.fixture
def worker_type() -> str:
    """A task queue of this test's own."""
    return unique_worker_type()


async def wait_for(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], within: float = 15.0) -> T:
    """Poll `probe` until `done(result)`, failing after `within` seconds (no fixed sleeps)."""
    deadline = time.monotonic() + within
    delay = 0.01
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {within}s; last value: {value!r}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)


def queue_id(worker_type: str) -> str:
    """The task queue of `make_task(workerType=worker_type)`."""
    return f"tc-local/{worker_type}"


class ClaimedRun:
    """A task created and claimed, with a queue client holding the run's temporary credentials."""

    def __init__(self, task_id: str, claim: dict[str, Any], queue: Any) -> None:
        self.task_id = task_id
        self.claim = claim
        self.queue = queue
        self.expires: str = claim["task"]["expires"]

    async def create(self, name: str, **request: Any) -> dict[str, Any]:
        """createArtifact on run 0 (expiring with the task unless given)."""
        result: dict[str, Any] = await self.queue.createArtifact(
            self.task_id, 0, name, {"expires": self.expires, **request}
        )
        return result


async def start_run(
    tc: RunningTCLocal, clients: Clients, queue: Any, worker_type: str, **task: Any
) -> ClaimedRun:
    """Create a task on the worker type's queue and claim it."""
    task_id = slugid.nice()
    await queue.createTask(task_id, tc.make_task(workerType=worker_type, **task))
    claim = await claim_one(queue, queue_id(worker_type))
    return ClaimedRun(task_id, claim, clients.make("queue", claim["credentials"]))


async def claim_one(queue: Any, task_queue_id: str, worker: str = "w1") -> dict[str, Any]:
    """Claim exactly one task from a queue (failing if none comes)."""
    claims = await queue.claimWork(
        task_queue_id, {"workerGroup": "test-group", "workerId": worker, "tasks": 1}
    )
    assert len(claims["tasks"]) == 1, claims
    claim: dict[str, Any] = claims["tasks"][0]
    return claim
