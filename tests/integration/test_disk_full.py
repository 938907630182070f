"""A full disk costs the task, never the log or the worker (docs/reliability.md).

Each test mounts a small tmpfs (a few MiB, so filling it takes milliseconds) for the worker's
folders, and unmounts it at the end. Mounting needs root: CI runs as root, elsewhere they skip.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from generic_worker.engine.worker import Worker
from generic_worker.exitcodes import ExitCode
from generic_worker.features import build_features

from ..mounts.archives import Entry, compress, tar_bytes
from ..mounts.content import content_server, payload
from ..small_disk import free_bytes, tmpfs
from .harness import GW, run_state, wait_for
from .superseder_service import Superseder
from .test_live_log import live_url

MIB = 1024 * 1024
TRUNCATED = "[taskcluster:error] Task log truncated at "


def put_folders_on(gw: GW, disk: Path) -> None:
    gw.raw_config.update(
        tasksDir=str(disk / "tasks"),
        cachesDir=str(disk / "caches"),
        downloadsDir=str(disk / "downloads"),
        requiredDiskSpaceMegabytes=1,
    )


@pytest.fixture
def disk(gw: GW) -> Iterator[Path]:
    """An 8 MiB tmpfs holding tasksDir, cachesDir and downloadsDir."""
    with tmpfs(gw.tmp / "disk", "8m") as path:
        put_folders_on(gw, path)
        yield path


def worker(gw: GW, state_dir: Path | None = None, **overrides: Any) -> Worker:
    config = gw.config(**overrides)
    return Worker(config, build_features(config), state_dir=state_dir or gw.tmp, claim_retry_delay=0.1)


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    """No feature failed and nothing crashed: the worker's log has no traceback in it."""
    for record in caplog.records:
        text = record.getMessage()
        assert record.exc_info is None and "Traceback" not in text, text
        assert "failed to stop" not in text and "failed to start" not in text, text


async def test_a_task_filling_the_disk_with_output_keeps_its_log(
    gw: GW, disk: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    go = gw.tmp / "go"  # not on the full disk
    flood = f"echo first output; head -c 12M /dev/zero | base64; while [ ! -e {go} ]; do sleep 0.02; done"
    task_id = await gw.submit({"command": [["/bin/sh", "-c", flood]], "maxRunTime": 60})
    after = await gw.submit({"command": [["/bin/sh", "-c", "echo next task"]], "maxRunTime": 60})
    running = asyncio.create_task(gw.run(numberOfTasksToRun=2, cleanUpTaskDirs=True))
    url = await live_url(gw, task_id)
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        await wait_for(lambda: any("Task log truncated" in r.getMessage() for r in caplog.records))
        go.touch()
        async with asyncio.timeout(30):
            live = await response.content.read()  # to the end: the log closes with the task
    assert await running == ExitCode.TASKS_COMPLETE

    assert await gw.resolution(task_id) == "failed/failed"
    log = await gw.log(task_id)
    assert "\nfirst output\n" in log and "AAAAAAAA" in log
    kept, last = log.rstrip("\n").rsplit("\n", 1)
    assert last.startswith(TRUNCATED)
    assert "the disk of the task directory is full (No space left on device)" in last
    at = int(last[len(TRUNCATED) :].split(" ", 1)[0])
    assert at in (len(kept), len(kept) + 1)  # +1: the newline the truncation line started with
    assert log.count(TRUNCATED) == 1 and "=== Task Finished ===" not in log
    assert live.decode() == log  # live readers saw the same end
    assert await gw.resolution(after) == "completed/completed"
    assert "\nnext task\n" in await gw.log(after)
    no_tracebacks(caplog)


async def test_an_artifact_without_room_for_its_compressed_copy_fails_the_task(
    gw: GW, disk: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    task_id = await gw.submit(
        {
            # 5 MiB that do not compress, then not enough left for a gzip copy of them.
            "command": [["/bin/sh", "-c", "head -c 5M /dev/urandom > big.bin && echo small > small.txt"]],
            "maxRunTime": 60,
            "artifacts": [
                {"type": "file", "path": "big.bin", "name": "public/big.bin"},
                {
                    "type": "file",
                    "path": "small.txt",
                    "name": "public/small.txt",
                    "contentEncoding": "identity",
                },
            ],
        }
    )
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "failed/failed"
    log = await gw.log(task_id)
    assert (
        "TASK FAILURE: no space left on the worker's disk for the compressed copy of artifact "
        "public/big.bin (No space left on device)" in log
    )
    artifacts = await gw.artifacts(task_id)
    assert "public/big.bin" not in artifacts
    assert await gw.content(task_id, "public/small.txt") == b"small\n"
    no_tracebacks(caplog)


def tar_gz_of_zeros(mib: int) -> bytes:
    return compress(tar_bytes([Entry("zeros", data=bytes(mib * MIB))]), "gz")


async def test_mounts_that_do_not_fit_fail_clearly_and_free_their_space(
    gw: GW, disk: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    (disk / "tasks").mkdir()
    before = free_bytes(disk)
    async with content_server() as server:
        big = server.add("big.bin", os.urandom(12 * MIB))
        archive = server.add("zeros.tar.gz", tar_gz_of_zeros(12))
        download = await gw.submit(payload([{"file": "f", "content": {"url": big}}]))
        cache = await gw.submit(
            payload([{"directory": "c", "cacheName": "c", "content": {"url": archive}, "format": "tar.gz"}]),
            scopes=["generic-worker:cache:c"],
        )
        assert await gw.run(numberOfTasksToRun=2) == ExitCode.TASKS_COMPLETE

    assert await gw.resolution(download) == "failed/failed"
    log = await gw.log(download)
    assert f"[mounts] Could not fetch from url {big} into file " in log
    assert "would leave less than requiredDiskSpaceMegabytes" in log
    # Only the (complete) archive of the second task is recorded and kept, never the partial download.
    assert list(json.loads((gw.tmp / "file-caches.json").read_text())) == [f"urlcontent:{archive}"]
    assert len(os.listdir(disk / "downloads")) == 1

    assert await gw.resolution(cache) == "failed/failed"
    log = await gw.log(cache)
    assert "[mounts] " in log and "refusing to extract tar.gz archive" in log
    assert json.loads((gw.tmp / "directory-caches.json").read_text()) == {}
    assert os.listdir(disk / "caches") == []
    # What the mounts wrote is freed: only the two task logs and the small archive remain.
    assert free_bytes(disk) > before - MIB
    no_tracebacks(caplog)


async def test_no_claims_while_a_task_directory_cannot_be_set_up(gw: GW, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    with tmpfs(gw.tmp / "disk", "8m", inodes=64) as disk:
        put_folders_on(gw, disk)
        # The first task uses up every inode (and leaves its files: cleanUpTaskDirs is off).
        filler = await gw.submit(
            {
                "command": [["/bin/sh", "-c", "i=0; while touch f$i 2>/dev/null; do i=$((i+1)); done; true"]],
                "maxRunTime": 60,
            }
        )
        running = asyncio.create_task(worker(gw, numberOfTasksToRun=3).run())
        try:
            await blocked_then_freed(gw, disk, caplog, filler, running)
        finally:
            running.cancel()  # a no-op once it has exited; else it must not outlive the tmpfs
    assert await gw.resolution(filler) == "completed/completed"
    messages = [r.getMessage() for r in caplog.records]
    assert any("WORKER EXCEPTION: could not set up a task directory in " in m for m in messages)
    assert any("task directories can be set up again" in m for m in messages)


async def blocked_then_freed(
    gw: GW, disk: Path, caplog: pytest.LogCaptureFixture, filler: str, running: asyncio.Task[ExitCode]
) -> None:
    """The unusable-task-directory run, the refusals, then claims again once freed."""
    await wait_for(lambda: gw_resolved(gw, filler))
    unstartable = await gw.submit({"command": [["true"]], "maxRunTime": 60})
    await wait_for(lambda: gw_resolved(gw, unstartable))
    assert await gw.resolution(unstartable) == "exception/internal-error"
    artifact = (await gw.artifacts(unstartable))["public/logs/live_backing.log"]
    assert artifact["storageType"] == "error"

    def refusals() -> int:
        return sum("not claiming: cannot set up a task directory" in r.getMessage() for r in caplog.records)

    await wait_for(refusals)
    waiting = await gw.submit({"command": [["true"]], "maxRunTime": 60})
    seen = refusals()
    await wait_for(lambda: refusals() > seen + 2)
    assert await run_state(gw, waiting) == "pending"  # not claimed (and failed) meanwhile
    for task_dir in (disk / "tasks").glob("task_*"):
        for path in task_dir.glob("f*"):
            path.unlink()
    assert await asyncio.wait_for(asyncio.shield(running), 60) == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(waiting) == "completed/completed"


async def gw_resolved(gw: GW, task_id: str) -> bool:
    return await run_state(gw, task_id) in ("completed", "failed", "exception")


async def test_a_state_file_that_cannot_be_saved_keeps_its_previous_state(
    gw: GW, disk: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    state_dir = disk / "state"  # the indexes on the disk that fills up
    state_dir.mkdir()
    scopes = ["generic-worker:cache:c"]
    fill = "head -c 64M /dev/zero > c/fill 2>/dev/null; true"  # the task fills the disk, and is fine
    first = await gw.submit(
        payload([{"directory": "c", "cacheName": "c"}], "echo data > c/data"), scopes=scopes
    )
    filling = await gw.submit(payload([{"directory": "c", "cacheName": "c"}], fill), scopes=scopes)
    last = await gw.submit(payload([], "echo still working"))
    # 2 MiB: after the filling task its directory (log and the log's held blocks, about 1 MiB) is
    # gone again, so 1 MiB could be free by then without any eviction.
    filled_worker = worker(gw, state_dir, numberOfTasksToRun=3, requiredDiskSpaceMegabytes=2)
    assert await filled_worker.run() == ExitCode.TASKS_COMPLETE

    assert await gw.resolution(first) == "completed/completed"
    assert await gw.resolution(filling) == "completed/completed"
    assert await gw.resolution(last) == "completed/completed"
    messages = [r.getMessage() for r in caplog.records]
    state = state_dir / "directory-caches.json"
    assert any(
        f"could not save {state} (" in m and "it keeps the previous state for now" in m for m in messages
    )
    # The GC evicted the full cache before the last claim, and the index was saved again.
    assert any(f"saved {state} again" in m for m in messages)
    assert json.loads(state.read_text()) == {}
    assert [p.name for p in state_dir.iterdir() if p.name.endswith(".tmp")] == []
    no_tracebacks(caplog)


async def test_a_superseded_task_on_a_full_disk_still_names_its_successor(
    gw: GW, superseder: Superseder, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    successor = "fakeSuccessorTaskId000"
    superseder.answer([successor])
    # Inodes for the folders, the task directory and its log, and none to spare for
    # superseded-by.json (or for the gzip copy of it).
    with tmpfs(gw.tmp / "disk", "8m", inodes=7) as disk:
        put_folders_on(gw, disk)
        task_id = await gw.submit({"command": [["true"]], "maxRunTime": 30, "supersederUrl": superseder.url})
        assert await gw.run() == ExitCode.TASKS_COMPLETE
    # Today's queue refuses `superseded`: the run completes, its log naming the successor.
    assert await gw.resolution(task_id) == "completed/completed"
    log = await gw.log(task_id)
    assert f"superseded by task {successor}" in log
    assert (
        "Could not write public/superseded-by.json: No space left on device" in log
        or "Could not upload public/superseded-by.json" in log
    )
    assert "commands ran" not in log
    no_tracebacks(caplog)
