"""`/metrics` scraped from a real worker after real tasks against tc-local."""

import asyncio
import socket
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from generic_worker import __version__
from generic_worker.engine.worker import Worker
from generic_worker.exitcodes import ExitCode
from generic_worker.features import build_features

from .harness import GW, wait_for

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def scrape(port: int) -> tuple[str, Samples]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return text, samples


async def try_scrape(port: int) -> tuple[str, Samples] | None:
    try:
        return await scrape(port)
    except aiohttp.ClientConnectionError:
        return None


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_metrics_after_real_tasks(gw: GW):
    port = free_port()
    config = gw.config(metricsPort=port, numberOfTasksToRun=0, idleTimeoutSecs=0)
    worker = Worker(config, build_features(config), state_dir=gw.tmp)
    running = asyncio.create_task(worker.run())
    _, before = await wait_for(lambda: try_scrape(port))
    cache = {"directory": "c", "cacheName": "metrics-cache"}
    first = await gw.submit(
        {
            "command": [["/bin/sh", "-c", "echo hello > out.txt"]],
            "maxRunTime": 30,
            "mounts": [cache],
            "artifacts": [{"type": "file", "path": "out.txt", "name": "public/out.txt"}],
        },
        scopes=["generic-worker:cache:metrics-cache"],
    )
    second = await gw.submit(
        {
            "command": [["/bin/sh", "-c", "exit 3"]],
            "maxRunTime": 30,
            "mounts": [cache, {"file": "in.txt", "content": {"taskId": first, "artifact": "public/out.txt"}}],
        },
        scopes=["generic-worker:cache:metrics-cache"],
        dependencies=[first],
    )
    await wait_for(lambda: _resolved(gw, second), timeout=60)
    text, after = await scrape(port)
    worker.request_interrupt()
    assert await asyncio.wait_for(running, 30) == ExitCode.WORKER_STOPPED
    assert await gw.resolution(first) == "completed/completed"

    assert delta(before, after, "generic_worker_tasks_claimed_total") == 2
    assert (
        delta(before, after, "generic_worker_tasks_resolved_total", state="completed", reason="completed")
        == 1
    )
    assert delta(before, after, "generic_worker_tasks_resolved_total", state="failed", reason="failed") == 1
    assert delta(before, after, "generic_worker_task_duration_seconds_count") == 2
    assert delta(before, after, "generic_worker_claim_to_first_command_seconds_count") == 2
    assert delta(before, after, "generic_worker_cache_misses_total", kind="directory") == 1
    assert delta(before, after, "generic_worker_cache_hits_total", kind="directory") == 1
    assert delta(before, after, "generic_worker_cache_misses_total", kind="file") == 1
    assert delta(before, after, "generic_worker_downloaded_bytes_total") == len("hello\n")
    assert delta(before, after, "generic_worker_uploaded_bytes_total") > len("hello\n")  # + two logs
    assert after[("generic_worker_running_tasks", ())] == 0
    assert after[("generic_worker_free_disk_bytes", (("directory", "tasks"),))] > 0
    info = {
        dict(labels)["worker_pool_id"]: dict(labels)
        for (name, labels) in after
        if name == "generic_worker_info"
    }
    assert info[config.task_queue_id]["version"] == __version__
    assert info[config.task_queue_id]["engine"] == "insecure"
    # Every metric of ours is documented in docs/operations.md.
    families = {f.name for f in text_string_to_metric_families(text) if f.name.startswith("generic_worker")}
    docs = DOCS.read_text()
    assert len(families) >= 13
    assert [f for f in sorted(families) if f"`{f}" not in docs] == []


async def _resolved(gw: GW, task_id: str) -> bool:
    runs = (await gw.status(task_id)).get("runs", [])
    return bool(runs) and runs[-1]["state"] not in ("pending", "running")


async def test_metrics_are_off_by_default(gw: GW):
    port = free_port()
    task_id = await gw.submit({"command": [["true"]], "maxRunTime": 30})
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "completed/completed"
    assert await try_scrape(port) is None
