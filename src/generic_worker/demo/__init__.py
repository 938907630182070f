"""`make demo`: the worker running real example tasks on an embedded tc-local.

It starts tc-local on a free loopback port (state in `./demo-data`), creates a worker client with
exactly the scopes a worker needs, submits every task in `examples/`, runs the worker until all
of them are resolved, stops it the way an operator would (SIGINT semantics: finish, then exit),
and prints each task's runs, log excerpt and artifacts.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import slugid
import taskcluster.aio
import yaml

from generic_worker.config import Config, config_from_mapping
from generic_worker.demo import docker_example
from generic_worker.engine.worker import Worker
from generic_worker.features import build_features
from generic_worker.runner import setup_logging
from generic_worker.timefmt import to_tc
from tclocal.context import Settings
from tclocal.server import ServerConfig, TCLocalServer

PROVISIONER, WORKER_TYPE = "demo-provisioner", "demo-worker"
WORKER_GROUP, WORKER_ID = "demo-group", "demo-worker-1"
REPO = Path(__file__).resolve().parents[3]


def example_tasks(directory: Path, group: str) -> list[tuple[str, dict[str, Any]]]:
    """Task definitions from `examples/*.yml`, completed with ids, times and the demo queue."""
    return [
        (path.stem, complete(yaml.safe_load(path.read_text()), path.stem, group))
        for path in sorted(directory.glob("*.yml"))
    ]


def complete(task: dict[str, Any], name: str, group: str) -> dict[str, Any]:
    """An example task with metadata, times and the demo queue filled in."""
    now = datetime.now(UTC)
    task.setdefault("metadata", {})
    task["metadata"].setdefault("name", name)
    task["metadata"].setdefault("description", f"example {name}")
    task["metadata"].setdefault("owner", "demo@localhost")
    task["metadata"].setdefault("source", f"http://localhost/examples/{name}.yml")
    task.update(provisionerId=PROVISIONER, workerType=WORKER_TYPE, schedulerId="demo", taskGroupId=group)
    task.setdefault("created", to_tc(now))
    task.setdefault("deadline", to_tc(now + timedelta(hours=1)))
    task.setdefault("expires", to_tc(now + timedelta(days=7)))
    return task


async def docker_examples(examples: Path, data: Path, group: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, taskId, task) of the d2g example and its image publisher, or none without Docker."""
    reason = await docker_example.docker_unavailable_reason()
    if reason is not None:
        print(f"(the d2g example is skipped: {reason})")
        return []
    tarball = await docker_example.build_image(data)
    image_task = slugid.nice()
    return [
        ("d2g-image", image_task, complete(docker_example.publisher_task(tarball), "d2g-image", group)),
        ("d2g", slugid.nice(), complete(docker_example.d2g_task(examples, image_task), "d2g", group)),
    ]


def worker_config(root_url: str, access_token: str, data: Path, d2g: bool = False) -> Config:
    """The demo worker's config: every directory under `data`, any free ports."""
    config, _ = config_from_mapping(
        {
            "rootURL": root_url,
            "clientId": f"demo/{WORKER_ID}",
            "accessToken": access_token,
            "provisionerId": PROVISIONER,
            "workerType": WORKER_TYPE,
            "workerGroup": WORKER_GROUP,
            "workerId": WORKER_ID,
            "publicIP": "127.0.0.1",
            "subdomain": "",
            "livelogGETPort": 0,
            "taskclusterProxyPort": 0,
            "tasksDir": str(data / "tasks"),
            "cachesDir": str(data / "caches"),
            "downloadsDir": str(data / "downloads"),
            "cleanUpTaskDirs": False,
            "requiredDiskSpaceMegabytes": 64,
            "workerTypeMetadata": {"demo": True},
            "d2gConfig": {"enableD2G": d2g, "logTranslation": False},
        }
    )
    return config


async def all_resolved(queue: Any, task_ids: list[str]) -> bool:
    """True when every task's newest run is resolved and none is pending again."""
    for task_id in task_ids:
        status = (await queue.status(task_id))["status"]
        if status["state"] in ("pending", "running", "unscheduled"):
            return False
    return True


async def report(queue: Any, session: aiohttp.ClientSession, name: str, task_id: str, root_url: str) -> None:
    """Print one task's runs, the tail of its log, and its artifacts."""
    status = (await queue.status(task_id))["status"]
    print(f"\n== {name}: task {task_id}")
    for run in status["runs"]:
        print(f"   run {run['runId']}: {run['state']}/{run.get('reasonResolved')}")
        listing = await queue.listArtifacts(task_id, str(run["runId"]))
        for artifact in listing["artifacts"]:
            url = f"{root_url}/api/queue/v1/task/{task_id}/runs/{run['runId']}/artifacts/{artifact['name']}"
            print(f"     artifact {artifact['name']} ({artifact['storageType']}): {url}")
    last = status["runs"][-1]["runId"]
    url = queue.buildSignedUrl("getArtifact", task_id, str(last), "public/logs/live_backing.log")
    async with session.get(url, auto_decompress=False) as response:
        body = await response.read()
        if response.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
    lines = body.decode(errors="replace").splitlines()
    interesting = [line for line in lines if not line.startswith("[taskcluster") or "Exit Code" in line]
    print("     log (command output and exit codes):")
    for line in interesting[-6:]:
        print(f"       | {line}")


async def demo(examples: Path, data: Path) -> int:
    """Run the whole demo in `data` (a fresh directory); 0 when every task was resolved."""
    server = TCLocalServer(
        ServerConfig(data / "tc-local", "127.0.0.1", 0, settings=Settings(claim_work_wait=2.0))
    )
    await server.start()
    root = {
        "rootUrl": server.root_url,
        "credentials": {"clientId": server.root_client_id, "accessToken": server.root_access_token},
    }
    print(f"tc-local is serving {server.root_url} (state in {data / 'tc-local'})")
    try:
        async with aiohttp.ClientSession() as session:
            auth = taskcluster.aio.Auth(root, session=session)
            queue = taskcluster.aio.Queue(root, session=session)
            scopes = [
                f"queue:claim-work:{PROVISIONER}/{WORKER_TYPE}",
                f"queue:worker-id:{WORKER_GROUP}/{WORKER_ID}",
                "queue:status:*",
            ]
            expires = to_tc(datetime.now(UTC) + timedelta(days=1))
            client = await auth.createClient(
                f"demo/{WORKER_ID}", {"expires": expires, "description": "demo worker", "scopes": scopes}
            )
            submitted = []
            group = slugid.nice()
            with_docker = await docker_examples(examples, data, group)
            tasks = [(name, slugid.nice(), task) for name, task in example_tasks(examples, group)]
            for name, task_id, task in tasks + with_docker:
                await queue.createTask(task_id, task)
                submitted.append((name, task_id))
                print(f"submitted {name:<10} as task {task_id}")
            config = worker_config(server.root_url, client["accessToken"], data, d2g=bool(with_docker))
            worker = Worker(config, build_features(config), state_dir=data)
            running = asyncio.create_task(worker.run())
            ids = [task_id for _, task_id in submitted]
            while not running.done() and not await all_resolved(queue, ids):
                await asyncio.wait({running}, timeout=0.2)
            worker.request_interrupt()
            code = await running
            finished = await all_resolved(queue, ids)
            print(f"\nworker exited with code {int(code)} ({code.name})")
            for name, task_id in submitted:
                await report(queue, session, name, task_id, server.root_url)
            print(f"\nTask directories (logs, files) are kept in {data / 'tasks'}.")
            print(
                f"tc-local keeps its state: `.venv/bin/tc-local serve --data-dir {data / 'tc-local'}` serves "
                "these tasks again; then `.venv/bin/tc-local status TASK_ID` / `log TASK_ID` / "
                "`fetch TASK_ID NAME` (see docs/tc-local.md)."
            )
    finally:
        await server.stop()
    return 0 if finished else 1


def main() -> int:
    """Entry point of `python -m generic_worker.demo`."""
    setup_logging(logging.INFO)
    data = Path.cwd() / "demo-data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    return asyncio.run(demo(REPO / "examples", data))
