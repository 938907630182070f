"""`make demo`: the worker running real example tasks on an embedded tc-local.

First `generic-worker exec` runs one example alone (as a task author would before pushing it).
Then tc-local starts on a free loopback port (state in `./demo-data`), the worker gets a client
with exactly the scopes a worker needs, every task in `examples/` is submitted, the worker runs
until all of them are resolved and is stopped the way an operator would (SIGINT semantics:
finish, then exit), and each task's runs, log excerpt and artifacts are printed, with the URL of
tc-local's web view. With `--serve` (`make demo SERVE=1`) tc-local keeps serving until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import shutil
import signal
import sys
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
from generic_worker.local.exec_run import ExecOptions, exec_target
from generic_worker.local.platform import (
    complete_task,
    create_worker_client,
    local_defaults,
    merge_config,
    root_options,
    start_tclocal,
    worker_scopes,
    worker_settings,
)
from generic_worker.runner import setup_logging

QUEUE = ("demo-provisioner", "demo-worker")
WORKER = ("demo-group", "demo-worker-1")
REPO = Path(__file__).resolve().parents[3]


def example_tasks(directory: Path, group: str) -> list[tuple[str, dict[str, Any]]]:
    """Task definitions from `examples/*.yml`, completed with ids, times and the demo queue."""
    return [
        (path.stem, complete_task(yaml.safe_load(path.read_text()), path.stem, QUEUE, "demo", group))
        for path in sorted(directory.glob("*.yml"))
    ]


async def docker_examples(examples: Path, data: Path, group: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, taskId, task) of the d2g example and its image publisher, or none without Docker."""
    reason = await docker_example.docker_unavailable_reason()
    if reason is not None:
        print(f"(the d2g example is skipped: {reason})")
        return []
    tarball = await docker_example.build_image(data)
    image_task = slugid.nice()
    publisher = docker_example.publisher_task(tarball)
    d2g = docker_example.d2g_task(examples, image_task)
    return [
        ("d2g-image", image_task, complete_task(publisher, "d2g-image", QUEUE, "demo", group)),
        ("d2g", slugid.nice(), complete_task(d2g, "d2g", QUEUE, "demo", group)),
    ]


def worker_config(root_url: str, access_token: str, data: Path, d2g: bool = False) -> Config:
    """The demo worker's config: every directory under `data`, any free ports; d2g where Docker runs."""
    tied = worker_settings(root_url, f"demo/{WORKER[1]}", access_token, QUEUE, WORKER)
    extra = {
        "cleanUpTaskDirs": False,
        "workerTypeMetadata": {"demo": True},
        "d2gConfig": {"enableD2G": d2g, "logTranslation": False},
    }
    config, _ = config_from_mapping(merge_config(local_defaults(data, data), extra, tied))
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
    print(f"\n== {name}: task {task_id}  ({root_url}/tasks/{task_id})")
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


async def demo(examples: Path, data: Path, serve: bool) -> int:
    """Run the whole demo in `data` (a fresh directory); 0 when every task was resolved."""
    server = await start_tclocal(data / "tc-local")
    root = root_options(server)
    print(f"tc-local is serving {server.root_url} (state in {data / 'tc-local'})")
    try:
        async with aiohttp.ClientSession() as session:
            queue = taskcluster.aio.Queue(root, session=session)
            scopes = worker_scopes(*QUEUE, *WORKER)
            token = await create_worker_client(session, root, f"demo/{WORKER[1]}", scopes)
            submitted = []
            group = slugid.nice()
            with_docker = await docker_examples(examples, data, group)
            tasks = [(name, slugid.nice(), task) for name, task in example_tasks(examples, group)]
            for name, task_id, task in tasks + with_docker:
                await queue.createTask(task_id, task)
                submitted.append((name, task_id))
                print(f"submitted {name:<10} as task {task_id}")
            config = worker_config(server.root_url, token, data, d2g=bool(with_docker))
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
            print(f"\nWeb view of these tasks (follow logs, download artifacts): {server.root_url}/")
            if serve:
                await serve_until_interrupted()
            else:
                print(
                    "(`make demo SERVE=1` keeps it serving; or `.venv/bin/tc-local serve --data-dir "
                    f"{data / 'tc-local'}` serves these tasks again, see docs/local.md and docs/tc-local.md)"
                )
    finally:
        await server.stop()
    return 0 if finished else 1


async def serve_until_interrupted() -> None:
    """Keep tc-local (and its web view) serving until Ctrl-C."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("Serving until Ctrl-C.", flush=True)
    try:
        await stop.wait()
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m generic_worker.demo [--serve]`."""
    serve = "--serve" in (sys.argv[1:] if argv is None else argv)
    data = Path.cwd() / "demo-data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    example = REPO / "examples" / "hello.yml"
    print(f"== generic-worker exec {example.relative_to(REPO)}  (one task, run locally)", flush=True)
    exec_code = exec_target(ExecOptions(str(example), None, data / "exec-artifacts", False))
    print(f"== exec exited {int(exec_code)}\n", flush=True)
    setup_logging(logging.INFO)
    code = asyncio.run(demo(REPO / "examples", data, serve))
    return code or int(exec_code)
