"""Disk-space GC before claims (seed-gw.md §4.6, quirk 5 fixed): LRU eviction, no claim when full.

`requiredDiskSpaceMegabytes` is set relative to the free space the test measures, and caches are
filled with `fallocate` (instant, yet counted as used). As root (CI) the worker's folders live on
a private 2 GiB tmpfs, so no other process's writes can move that free space; elsewhere they live
on the machine's disk, with margins of 128 MiB against other processes' writes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from generic_worker.engine.worker import Worker
from generic_worker.exitcodes import ExitCode
from generic_worker.features import build_features
from generic_worker.mounts.diskspace import MIB, free_bytes

from ..mounts.content import content_server, payload
from ..small_disk import tmpfs
from .harness import GW, run_state, wait_for

FILL = 256  # MiB per cache


@pytest.fixture(autouse=True)
def disk(gw: GW) -> Iterator[Path]:
    """Where the worker's folders are: a private tmpfs as root, else the test's temporary folder."""
    if os.geteuid() != 0:
        yield gw.tmp
        return
    with tmpfs(gw.tmp / "disk", "2g") as path:
        gw.raw_config.update(
            tasksDir=str(path / "tasks"), cachesDir=str(path / "caches"), downloadsDir=str(path / "downloads")
        )
        yield path


def free_mib(gw: GW) -> int:
    return free_bytes(Path(gw.raw_config["tasksDir"]).parent) // MIB


def fill(name: str) -> dict[str, object]:
    return payload([{"directory": name, "cacheName": name}], f"fallocate -l {FILL}M {name}/blob")


def scopes(*names: str) -> list[str]:
    return [f"generic-worker:cache:{n}" for n in names]


def evictions(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage().split("[mounts] Evicting ")[1].split(" (")[0]
        for r in caplog.records
        if "Evicting" in r.getMessage()
    ]


async def test_gc_evicts_least_recently_used_first(gw: GW, caplog: pytest.LogCaptureFixture):
    async with content_server() as server:
        url = server.add("d.txt", b"download\n")
        await gw.submit(fill("b"), scopes=scopes("b"))
        await gw.submit(payload([{"file": "d.txt", "content": {"url": url}}]))
        await gw.submit(fill("c"), scopes=scopes("c"))
        await gw.submit(fill("a"), scopes=scopes("a"))
        assert await gw.run(numberOfTasksToRun=4) == ExitCode.TASKS_COMPLETE
    caplog.set_level(logging.INFO)
    last = await gw.submit(payload([], "true"))
    # Need 1.5 caches back: b (least recently used) is not enough, the download hardly counts,
    # c makes it; a (most recently used) stays.
    assert await gw.run(requiredDiskSpaceMegabytes=free_mib(gw) + FILL * 3 // 2) == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(last) == "completed/completed"
    assert evictions(caplog) == [
        "writable directory cache b",
        f"download urlcontent:{url}",
        "writable directory cache c",
    ]
    state = json.loads((gw.tmp / "directory-caches.json").read_text())
    assert [e["key"] for e in state.values()] == ["a"]
    assert json.loads((gw.tmp / "file-caches.json").read_text()) == {}


async def test_worker_exits_when_nothing_can_be_freed(gw: GW, caplog: pytest.LogCaptureFixture):
    await gw.submit(fill("a"), scopes=scopes("a"))
    await gw.run()
    task_id = await gw.submit(payload([], "true"))
    caplog.set_level(logging.INFO)
    assert await gw.run(requiredDiskSpaceMegabytes=free_mib(gw) + 100 * 1024) == ExitCode.INTERNAL_ERROR
    assert evictions(caplog) == ["writable directory cache a"]
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        "Not able to free up enough disk space - require " in m and "- and nothing left to delete" in m
        for m in messages
    )
    assert await run_state(gw, task_id) == "pending"  # never claimed


async def test_no_claim_while_the_space_is_held_by_a_running_task(gw: GW, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    holder = await gw.submit(
        payload(
            [{"directory": "x", "cacheName": "x"}],
            f"fallocate -l {FILL}M x/blob && touch filled && while [ ! -e go ]; do sleep 0.05; done",
        ),
        scopes=scopes("x"),
    )
    config = gw.config(capacity=2, numberOfTasksToRun=2, requiredDiskSpaceMegabytes=free_mib(gw) - FILL // 2)
    worker = Worker(config, build_features(config), state_dir=gw.tmp, claim_retry_delay=0.1)
    running = asyncio.create_task(worker.run())
    task_dir = (await wait_for(lambda: [d for d in gw.task_dirs() if (d / "filled").exists()]))[0]
    # Submitted only once the worker refused a claim: a long poll already under way when the
    # disk filled up would otherwise hand it out.
    await wait_for(lambda: any("are in use by running tasks" in r.getMessage() for r in caplog.records))
    waiting = await gw.submit(payload([], "true"))
    refusals = sum("not claiming" in r.getMessage() for r in caplog.records)
    await wait_for(lambda: sum("not claiming" in r.getMessage() for r in caplog.records) > refusals + 2)
    assert await run_state(gw, waiting) == "pending"
    (task_dir / "go").touch()
    assert await asyncio.wait_for(running, 60) == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(holder) == "completed/completed"
    assert await gw.resolution(waiting) == "completed/completed"
    assert evictions(caplog) == ["writable directory cache x"]
