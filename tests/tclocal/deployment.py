"""The deployment the contract tests run against: an embedded tc-local, or a real Taskcluster.

`make conformance` sets `TCLOCAL_CONFORMANCE=1`; with `TASKCLUSTER_ROOT_URL`,
`TASKCLUSTER_CLIENT_ID` and `TASKCLUSTER_ACCESS_TOKEN` also set (a client with scope `*`), the
suite runs against that deployment. Otherwise (and always under `make test`) it runs against
an embedded tc-local. Tests reach the deployment only through its HTTP API, so the same test
runs unchanged on both; what only tc-local has is marked `tclocal_only` and skipped elsewhere.

Everything a test creates that outlives it on a real deployment (clients, roles, secrets, index
entries, worker pools) is registered with `Deployment.defer` and removed when the
test ends. Tasks and purge requests cannot be deleted: each test uses its own task queue and names,
and they expire.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import taskcluster.aio
from taskcluster.exceptions import TaskclusterRestFailure

from tclocal.testing import ROOT, RunningTCLocal, client_options, task_definition

ENV = ("TASKCLUSTER_ROOT_URL", "TASKCLUSTER_CLIENT_ID", "TASKCLUSTER_ACCESS_TOKEN")


def real_deployment_env() -> dict[str, str] | None:
    """The real deployment to test, when `make conformance` was given one; else None."""
    if os.environ.get("TCLOCAL_CONFORMANCE") != "1" or not all(os.environ.get(k) for k in ENV):
        return None
    return {k: os.environ[k] for k in ENV}


@dataclass
class Deployment:
    """A Taskcluster deployment reached over HTTP with a root client (scope `*`)."""

    root_url: str
    root_client_id: str
    root_access_token: str
    local: RunningTCLocal | None = None  # the embedded tc-local; None on a real deployment
    _cleanups: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    @property
    def is_tclocal(self) -> bool:
        """True when this is the embedded tc-local."""
        return self.local is not None

    @property
    def root_credentials(self) -> dict[str, str]:
        """`{clientId, accessToken}` of the root client."""
        return {"clientId": self.root_client_id, "accessToken": self.root_access_token}

    def options(self, credentials: dict[str, Any] | None | object = ROOT) -> dict[str, Any]:
        """Options for a taskcluster client: root credentials by default, none when None."""
        return client_options(self.root_url, self.root_credentials, credentials)

    def make_task(self, **overrides: Any) -> dict[str, Any]:
        """A valid task definition (deadline in 15 min, expiry in 14 days); override any field."""
        return task_definition(**overrides)

    def defer(self, cleanup: Callable[[], Awaitable[Any]]) -> None:
        """Run `cleanup()` when the current test ends (a 404 there is ignored)."""
        self._cleanups.append(cleanup)

    async def create_client(self, client_id: str, scopes: list[str]) -> str:
        """Create a client with `scopes` (deleted when the test ends); return its accessToken."""
        async with aiohttp.ClientSession() as session:
            auth = taskcluster.aio.Auth(self.options(), session=session)
            with contextlib.suppress(TaskclusterRestFailure):
                await auth.deleteClient(client_id)
            created = await auth.createClient(
                client_id,
                {
                    "expires": taskcluster.fromNowJSON("1 day"),
                    "description": "a client of the tc-local contract tests",
                    "scopes": scopes,
                },
            )
        self.defer(lambda: self.root_call("auth", "deleteClient", client_id))
        token: str = created["accessToken"]
        return token

    async def root_call(self, service: str, method: str, *args: Any) -> Any:
        """Call `service.method(*args)` as root with a session of its own."""
        async with aiohttp.ClientSession() as session:
            client = getattr(taskcluster.aio, _CLASSES[service])(self.options(), session=session)
            return await getattr(client, method)(*args)

    async def clean_up(self) -> None:
        """Undo what the test registered, newest first; every cleanup runs whatever the others do."""
        failures: list[BaseException] = []
        while self._cleanups:
            cleanup = self._cleanups.pop()
            try:
                await cleanup()
            except TaskclusterRestFailure as err:
                if err.status_code != 404:
                    failures.append(err)
        if failures:
            raise failures[0]


_CLASSES = {
    "queue": "Queue",
    "auth": "Auth",
    "object": "Object",
    "purge-cache": "PurgeCache",
    "secrets": "Secrets",
    "index": "Index",
    "worker-manager": "WorkerManager",
}
