"""The embedded tc-local that `make demo` and `generic-worker exec` run the worker against.

One place starts tc-local in a data directory, creates the worker's client with exactly the
scopes a worker needs, builds the worker's config and completes task definitions, so the demo
and `exec` behave the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import slugid
import taskcluster.aio

from generic_worker.timefmt import to_tc
from tclocal.context import Settings
from tclocal.server import ServerConfig, TCLocalServer


async def start_tclocal(data_dir: Path, claim_work_wait: float = 2.0) -> TCLocalServer:
    """Start tc-local on a free loopback port with its state in `data_dir`; stop it when done."""
    server = TCLocalServer(
        ServerConfig(data_dir, "127.0.0.1", 0, settings=Settings(claim_work_wait=claim_work_wait))
    )
    await server.start()
    return server


def root_options(server: TCLocalServer) -> dict[str, Any]:
    """Taskcluster client options with tc-local's root credentials (scope `*`)."""
    return {
        "rootUrl": server.root_url,
        "credentials": {"clientId": server.root_client_id, "accessToken": server.root_access_token},
    }


def worker_scopes(provisioner: str, worker_type: str, group: str, worker_id: str) -> list[str]:
    """What a worker's own client needs: claim from its queue as its id. Tasks bring their own scopes."""
    return [f"queue:claim-work:{provisioner}/{worker_type}", f"queue:worker-id:{group}/{worker_id}"]


async def create_worker_client(
    session: aiohttp.ClientSession, options: Mapping[str, Any], client_id: str, scopes: list[str]
) -> str:
    """Create the worker's client in tc-local's auth service; return its accessToken."""
    auth = taskcluster.aio.Auth(dict(options), session=session)
    expires = to_tc(datetime.now(UTC) + timedelta(days=1))
    body = {"expires": expires, "description": "local worker", "scopes": scopes}
    client = await auth.createClient(client_id, body)
    return str(client["accessToken"])


def worker_settings(
    root_url: str, client_id: str, access_token: str, queue: tuple[str, str], worker: tuple[str, str]
) -> dict[str, Any]:
    """The config keys that tie a worker to the embedded tc-local (they override a config file)."""
    return {
        "rootURL": root_url,
        "clientId": client_id,
        "accessToken": access_token,
        "provisionerId": queue[0],
        "workerType": queue[1],
        "workerGroup": worker[0],
        "workerId": worker[1],
    }


def local_defaults(data: Path, caches: Path) -> dict[str, Any]:
    """Defaults for a worker on this machine: loopback live log, any free ports, dirs under `data`."""
    return {
        "publicIP": "127.0.0.1",
        "subdomain": "",
        "livelogGETPort": 0,
        "taskclusterProxyPort": 0,
        "tasksDir": str(data / "tasks"),
        "cachesDir": str(caches / "caches"),
        "downloadsDir": str(caches / "downloads"),
        "requiredDiskSpaceMegabytes": 64,
    }


def merge_config(
    defaults: Mapping[str, Any], given: Mapping[str, Any], forced: Mapping[str, Any]
) -> dict[str, Any]:
    """`given` over `defaults`, `forced` over both; keys compare case-insensitively, as config keys do."""
    merged: dict[str, Any] = {}
    for layer in (defaults, given, forced):
        lowered = {k.lower() for k in layer}
        merged = {k: v for k, v in merged.items() if k.lower() not in lowered}
        merged.update(layer)
    return merged


def complete_task(
    task: dict[str, Any], name: str, queue: tuple[str, str], scheduler: str, group: str | None = None
) -> dict[str, Any]:
    """A task definition for the local queue: its times from now, metadata filled in.

    The queue (`provisionerId`/`workerType`) is always the local worker's; `taskQueueId` is
    dropped. `created`/`deadline`/`expires` are set from now (a definition copied from a real
    deployment carries stale ones).
    """
    now = datetime.now(UTC)
    done = {k: v for k, v in task.items() if k != "taskQueueId"}
    metadata = dict(done.get("metadata") or {})
    metadata.setdefault("name", name)
    metadata.setdefault("description", f"{name} (run locally)")
    metadata.setdefault("owner", "local@localhost")
    metadata.setdefault("source", f"http://localhost/{name}")
    done["metadata"] = metadata
    done.update(provisionerId=queue[0], workerType=queue[1])
    done.setdefault("schedulerId", scheduler)
    done.setdefault("taskGroupId", group or slugid.nice())
    done["created"] = to_tc(now)
    done["deadline"] = to_tc(now + timedelta(hours=24))
    done["expires"] = to_tc(now + timedelta(days=7))
    return done
