"""What the worker benchmarks share: a worker client on tc-local, its config, trivial tasks.

(The leading underscore keeps `python -m bench` from running this module as a benchmark.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import taskcluster.aio

from tclocal.core.timestamps import from_now

PROVISIONER, WORKER_GROUP, WORKER_ID = "bench", "bench", "w1"


async def worker_config(
    options: dict[str, Any], session: aiohttp.ClientSession, worker_type: str, tmp: Path, **overrides: Any
) -> dict[str, Any]:
    """Create a client with exactly a worker's scopes; return a worker config (JSON) using it."""
    client_id = f"bench/{worker_type}"
    scopes = [
        f"queue:claim-work:{PROVISIONER}/{worker_type}",
        f"queue:worker-id:{WORKER_GROUP}/{WORKER_ID}",
        "queue:status:*",
    ]
    auth = taskcluster.aio.Auth(options, session=session)
    client = await auth.createClient(
        client_id, {"expires": from_now(86400), "description": "b", "scopes": scopes}
    )
    return {
        "rootURL": options["rootUrl"], "clientId": client_id, "accessToken": client["accessToken"],
        "provisionerId": PROVISIONER, "workerType": worker_type, "workerGroup": WORKER_GROUP, "workerId": WORKER_ID,
        "publicIP": "127.0.0.1", "subdomain": "", "livelogGETPort": 0, "taskclusterProxyPort": 0,
        "tasksDir": str(tmp / "tasks"), "cachesDir": str(tmp / "caches"), "downloadsDir": str(tmp / "dl"),
        "requiredDiskSpaceMegabytes": 1, **overrides,
    }  # fmt: skip


def trivial_task(worker_type: str, command: list[str], name: str) -> dict[str, Any]:
    """A task on the bench queue running one short command."""
    return {
        "provisionerId": PROVISIONER,
        "workerType": worker_type,
        "created": from_now(0),
        "deadline": from_now(3600),
        "expires": from_now(86400),
        "payload": {"command": [command], "maxRunTime": 60},
        "metadata": {"name": name, "description": "bench", "owner": "b@example.com", "source": "https://x/"},
    }
