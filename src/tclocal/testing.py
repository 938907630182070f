"""Running tc-local inside a test process: a background thread with its own event loop.

    with running_tclocal(tmp_path) as tc:
        queue = taskcluster.Queue(tc.options())
        queue.createTask(slugid.nice(), tc.make_task(workerType=unique_worker_type()))

The service listens on an ephemeral loopback port and is accepting connections when the
context manager yields; it is stopped (and its database closed) on exit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import string
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import slugid

from tclocal.auth.store import Client, new_access_token
from tclocal.context import Settings
from tclocal.core.timestamps import from_now, now
from tclocal.server import ServerConfig, TCLocalServer

ROOT = object()
"""`credentials` default of `client_options`: the root client's."""


def client_options(
    root_url: str, root_credentials: dict[str, str], credentials: dict[str, Any] | None | object = ROOT
) -> dict[str, Any]:
    """Options for a taskcluster client: root credentials by default, none when None."""
    opts: dict[str, Any] = {"rootUrl": root_url}
    if credentials is ROOT:
        opts["credentials"] = root_credentials
    elif credentials is not None:
        opts["credentials"] = credentials
    return opts


def unique_worker_type(prefix: str = "wt") -> str:
    """A fresh, valid workerType, so tests sharing one tc-local use separate task queues."""
    suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(12))
    return f"{prefix}-{suffix}"


def task_definition(**overrides: Any) -> dict[str, Any]:
    """A valid task definition (deadline in 15 min, expiry in 14 days); override any field."""
    task: dict[str, Any] = {
        "provisionerId": "tc-local",
        "workerType": "test-worker",
        "schedulerId": "tc-local-tests",
        "taskGroupId": slugid.nice(),
        "created": from_now(0),
        "deadline": from_now(15 * 60),
        "expires": from_now(14 * 24 * 3600),
        "retries": 1,
        "scopes": [],
        "routes": [],
        "payload": {"command": [["/bin/sh", "-c", "echo hello"]], "maxRunTime": 60},
        "metadata": {
            "name": "tc-local test task",
            "description": "a task created by tclocal.testing.make_task",
            "owner": "tc-local@example.com",
            "source": "https://github.com/taskcluster/taskcluster",
        },
    }
    task.update(overrides)
    return task


@dataclass
class RunningTCLocal:
    """A tc-local running in a background thread (see `running_tclocal`)."""

    root_url: str
    root_client_id: str
    root_access_token: str
    data_dir: Path
    server: TCLocalServer
    loop: asyncio.AbstractEventLoop

    @property
    def root_credentials(self) -> dict[str, str]:
        """`{clientId, accessToken}` of the root client (scope `*`)."""
        return {"clientId": self.root_client_id, "accessToken": self.root_access_token}

    def options(self, credentials: dict[str, Any] | None | object = ROOT) -> dict[str, Any]:
        """Options for a taskcluster client: root credentials by default, none when None."""
        return client_options(self.root_url, self.root_credentials, credentials)

    def create_client(self, client_id: str, scopes: list[str]) -> str:
        """Create (or replace) a permanent client with `scopes`; return its accessToken."""
        ctx = self.server.ctx
        assert ctx is not None
        t = now()
        client = Client(client_id, new_access_token(), list(scopes), "test client", t + 86400, t, t, t)
        stored = asyncio.run_coroutine_threadsafe(ctx.auth.put_client(client), self.loop).result()
        return stored.access_token

    def make_task(self, **overrides: Any) -> dict[str, Any]:
        """A valid task definition (see `task_definition`)."""
        return task_definition(**overrides)


def _split_extra(extra: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    names = {f.name for f in dataclasses.fields(Settings)}
    return {k: v for k, v in extra.items() if k in names}, {k: v for k, v in extra.items() if k not in names}


@contextmanager
def running_tclocal(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    claim_timeout: float = 1200,
    claim_work_wait: float = 20.0,
    **extra: Any,
) -> Iterator[RunningTCLocal]:
    """Run tc-local on `host:port` (ephemeral by default) with state in `data_dir`.

    `extra` may set any other `Settings` field (reaper_interval, artifact_grace_after_exception,
    hawk_skew, blob_url_lifetime, expiry_interval) or `ServerConfig` field (root_access_token,
    clients_file, access_log).
    """
    settings_extra, config_extra = _split_extra(extra)
    settings = Settings(claim_timeout=claim_timeout, claim_work_wait=claim_work_wait, **settings_extra)
    config = ServerConfig(data_dir, host, port, settings=settings, **config_extra)
    server = TCLocalServer(config)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as err:  # reported to the caller below
            failure.append(err)
            started.set()
            loop.close()
            return
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(server.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run, name="tclocal", daemon=True)
    thread.start()
    started.wait()
    if failure:
        thread.join()
        raise failure[0]
    try:
        yield RunningTCLocal(
            server.root_url,
            server.root_client_id,
            server.root_access_token,
            data_dir,
            server,
            loop,
        )
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
