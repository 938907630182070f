"""Fixtures for the contract tests: a deployment (embedded tc-local or real), official clients.

See `deployment.py` for how the deployment is chosen. Tests marked
`@pytest.mark.tclocal_only("why")` (or whole modules, with `pytestmark`) test what only
tc-local has; against a real deployment they are skipped with that reason.
"""

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
from taskcluster.exceptions import TaskclusterAuthFailure, TaskclusterRestFailure

from tclocal.testing import RunningTCLocal, running_tclocal, unique_worker_type

from .deployment import Deployment, real_deployment_env
from .upstream import Checked

REAL = real_deployment_env()
# Unit tests of tc-local's own libraries: they do not talk to a deployment at all.
LIBRARY_MODULES = {
    "test_scopes.py": "unit tests of tc-local's scope library",
    "test_roles_model.py": "tc-local's role resolver against a reference model (its contract twin is test_roles_contract.py)",
}

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


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Against a real deployment, skip what only tc-local has (with the marker's reason)."""
    if REAL is None:
        return
    marker = item.get_closest_marker("tclocal_only")
    if marker is not None:
        pytest.skip(f"tc-local only: {marker.args[0] if marker.args else 'tc-local internals'}")
    reason = LIBRARY_MODULES.get(item.path.name)
    if reason is not None:
        pytest.skip(f"tc-local only: {reason}")


@pytest.fixture(scope="session")
def tc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The deployment under test: the real one `make conformance` was given, else tc-local."""
    if REAL is not None:
        yield Deployment(
            REAL["TASKCLUSTER_ROOT_URL"], REAL["TASKCLUSTER_CLIENT_ID"], REAL["TASKCLUSTER_ACCESS_TOKEN"]
        )
        return
    data_dir: Path = tmp_path_factory.mktemp("tclocal-contract")
    with running_tclocal(data_dir, claim_work_wait=2.0) as service:
        yield Deployment(service.root_url, service.root_client_id, service.root_access_token, local=service)


@pytest.fixture
def local(tc: Deployment) -> RunningTCLocal:
    """The embedded tc-local itself, for `tclocal_only` tests of its internals."""
    if tc.local is None:
        pytest.skip("tc-local only: needs the embedded tc-local")
    return tc.local


@pytest.fixture(autouse=True)
async def _clean_up_after_each_test(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Remove what the test created on the deployment (clients, roles, secrets, pools...)."""
    yield
    if "tc" in request.fixturenames:
        deployment: Deployment = request.getfixturevalue("tc")
        await deployment.clean_up()


async def refused(call: Awaitable[Any], status: int, code: str) -> dict[str, Any]:
    """Await `call`, which must fail with `status` and upstream's error `code`; return the body."""
    with pytest.raises((TaskclusterRestFailure, TaskclusterAuthFailure)) as err:
        await call
    assert err.value.status_code == status, err.value.body
    body: dict[str, Any] = err.value.body
    assert body["code"] == code, body
    return body


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One HTTP session per test, shared by its clients."""
    async with aiohttp.ClientSession() as http:
        yield http


class Clients:
    """Official aio clients for every service, with upstream response checking."""

    def __init__(self, tc: Deployment, session: aiohttp.ClientSession) -> None:
        self.tc = tc
        self.session = session

    def make(self, service: str, credentials: Any = "root", **options: Any) -> Any:
        """A checked client for `service` (root credentials unless given; None = anonymous)."""
        opts = self.tc.options() if credentials == "root" else self.tc.options(credentials)
        opts.update(options)
        opts.setdefault("maxRetries", 0)
        return Checked(CLIENTS[service](opts, session=self.session))


@pytest.fixture
def clients(tc: Deployment, session: aiohttp.ClientSession) -> Clients:
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
    tc: Deployment, clients: Clients, queue: Any, worker_type: str, **task: Any
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
