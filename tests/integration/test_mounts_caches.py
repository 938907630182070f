"""Writable directory caches against tc-local: persistence, scopes, purges and crash safety.

(modern-gw.md §5.6: TestCachesCanBeModified, TestMissingScopes, TestWritableDirectoryCacheNoSHA256,
TestCacheMoved, TestPurgeCaches*, TestPurgeTaskCaches; TARGET §11 SIGKILL; §12 quirk 12.)
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import taskcluster.aio
from aiohttp import web

from generic_worker.exitcodes import ExitCode

from ..mounts.archives import Entry, archive
from ..mounts.content import payload, publish_task
from .harness import GW, wait_for

SCRIPT = Path(sys.executable).parent / "generic-worker"
COUNT = "n=$(cat {d}/count 2>/dev/null || echo 0); echo $((n+1)) > {d}/count; echo {d}=$((n+1))"


def cache(name: str, directory: str | None = None) -> dict[str, str]:
    return {"directory": directory or name, "cacheName": name}


def scopes(*names: str) -> list[str]:
    return [f"generic-worker:cache:{n}" for n in names]


def cache_dirs(gw: GW) -> list[Path]:
    return sorted(p for p in (gw.tmp / "caches").iterdir())


async def test_cache_persists_between_tasks_and_is_isolated_by_name(gw: GW):
    ids = []
    for names in (["apple", "banana"], ["apple"], ["apple", "cherry"]):
        command = "; ".join(COUNT.format(d=n) for n in names)
        ids.append(await gw.submit(payload([cache(n) for n in names], command), scopes=scopes(*names)))
    await gw.run(numberOfTasksToRun=3)
    logs = [await gw.log(t) for t in ids]
    assert "apple=1" in logs[0] and "banana=1" in logs[0]
    assert "apple=2" in logs[1]
    assert "apple=3" in logs[2] and "cherry=1" in logs[2]
    assert "[mounts] Moving existing writable directory cache apple from " in logs[2]
    assert "[mounts] No existing writable directory cache 'cherry' - creating " in logs[2]
    assert len(cache_dirs(gw)) == 3
    state = json.loads((gw.tmp / "directory-caches.json").read_text())
    assert sorted(e["key"] for e in state.values()) == ["apple", "banana", "cherry"]
    assert all(e["mountedIn"] is None for e in state.values())


async def test_cache_path_outside_the_task_directory_fails(gw: GW):
    task_id = await gw.submit(payload([cache("abs", "/var/abs")]), scopes=scopes("abs"))
    await gw.run()
    assert await gw.resolution(task_id) == "failed/failed"
    assert "[mounts] cannot mount at path '/var/abs': it is outside the task directory" in await gw.log(
        task_id
    )
    assert not Path("/var/abs").exists()


async def test_missing_cache_scope_is_malformed_payload(gw: GW):
    task_id = await gw.submit(payload([cache("banana-cache")]), scopes=["generic-worker:cache:apple"])
    await gw.run()
    assert await gw.resolution(task_id) == "exception/malformed-payload"
    assert (
        'Feature "Mounts/Caches" requires scopes:\n'
        "[taskcluster:error] \n"
        "[taskcluster:error] generic-worker:cache:banana-cache\n"
        "[taskcluster:error] \n"
        "[taskcluster:error] but task only has scopes:\n"
        "[taskcluster:error] \n"
        "[taskcluster:error] generic-worker:cache:apple\n"
    ) in await gw.log(task_id)


async def test_preloaded_cache_is_downloaded_on_first_use_only(gw: GW):
    dep = await publish_task(gw.tc, {"public/seed.zip": archive([Entry("count", data=b"41\n")], "zip")})
    mount = {
        **cache("banana-cache"),
        "content": {"taskId": dep, "artifact": "public/seed.zip"},
        "format": "zip",
    }
    ids = [
        await gw.submit(
            payload([mount], COUNT.format(d="banana-cache")),
            scopes=scopes("banana-cache"),
            dependencies=[dep],
        )
        for _ in range(2)
    ]
    await gw.run(numberOfTasksToRun=2)
    first, second = [await gw.log(t) for t in ids]
    assert "banana-cache=42" in first and "[mounts] Downloading task " in first
    assert "[mounts] Successfully mounted writable directory cache '" in first
    assert '[mounts] Preserving cache: Moving "' in first
    assert "banana-cache=43" in second and "Downloading" not in second
    assert "[mounts] Moving existing writable directory cache banana-cache from " in second


async def test_a_cache_the_task_moved_away_is_expunged_and_fails_the_task(gw: GW):
    moved = await gw.submit(
        payload([cache("banana-cache")], "mv banana-cache elsewhere"), scopes=scopes("banana-cache")
    )
    again = await gw.submit(
        payload([cache("banana-cache")], COUNT.format(d="banana-cache")), scopes=scopes("banana-cache")
    )
    await gw.run(numberOfTasksToRun=2)
    assert await gw.resolution(moved) == "failed/failed"
    log = await gw.log(moved)
    assert "[mounts] Removing cache banana-cache from cache table" in log
    assert "[mounts] Deleting cache banana-cache file(s) at " in log
    assert (
        "[taskcluster:error] [mounts] Could not unmount writable directory cache 'banana-cache' at banana-cache due to: "
        in log
    )
    assert '\'could not persist cache "banana-cache" due to ' in log
    assert await gw.resolution(again) == "completed/completed"
    assert "No existing writable directory cache 'banana-cache'" in await gw.log(again)


async def test_purge_caches_exit_codes(gw: GW):
    cases = [
        (123, [123], True),
        (456, [123], False),
        (0, [780], False),
        (10, [780, 10, 2], True),
        (5, [], False),
    ]
    ids = []
    for code, purge, _ in cases:
        command = f"{COUNT.format(d='c')}; exit {code}"
        body = payload([cache("c")], command, onExitStatus={"purgeCaches": purge})
        ids.append(await gw.submit(body, scopes=scopes("c")))
    await gw.run(numberOfTasksToRun=len(cases))
    counts = []
    for task_id, (code, _, purged) in zip(ids, cases, strict=True):
        log = await gw.log(task_id)
        assert await gw.resolution(task_id) == ("completed/completed" if code == 0 else "failed/failed")
        assert ("[mounts] Removing cache c from cache table" in log) is purged, log
        assert ('[mounts] Preserving cache: Moving "' in log) is not purged
        if purged:
            assert f"[mounts] Purging caches since the last command exited {code}" in log
        counts.append(int(re.findall(r"^c=(\d+)$", log, re.M)[0]))
    assert counts == [1, 1, 2, 3, 1]


async def test_max_run_time_abort_purges_the_cache(gw: GW):
    slow = payload([cache("c")], f"{COUNT.format(d='c')}; sleep 30", maxRunTime=1)
    aborted = await gw.submit(slow, scopes=scopes("c"))
    after = await gw.submit(payload([cache("c")], COUNT.format(d="c")), scopes=scopes("c"))
    await gw.run(numberOfTasksToRun=2)
    log = await gw.log(aborted)
    assert await gw.resolution(aborted) == "failed/failed"
    assert (
        "[mounts] Purging caches since the task was aborted and may have left them in an inconsistent state"
        in log
    )
    assert "[mounts] Removing cache c from cache table" in log
    assert "c=1" in await gw.log(after)


async def test_purge_requests_empty_a_cache(gw: GW):
    first = await gw.submit(
        payload([cache("apple"), cache("banana")], COUNT.format(d="apple") + "; " + COUNT.format(d="banana")),
        scopes=scopes("apple", "banana"),
    )
    await gw.run()
    async with aiohttp.ClientSession() as session:
        purge = taskcluster.aio.PurgeCache(gw.tc.options(), session=session)
        await purge.purgeCache(f"test-provisioner/{gw.worker_type}", {"cacheName": "banana"})
    second = await gw.submit(
        payload([cache("apple"), cache("banana")], COUNT.format(d="apple") + "; " + COUNT.format(d="banana")),
        scopes=scopes("apple", "banana"),
    )
    await gw.run()
    assert "apple=1" in await gw.log(first)
    log = await gw.log(second)
    assert "[mounts] Removing cache banana from cache table" in log
    assert "apple=2" in log and "banana=1" in log
    assert "Could not reach purgecache service" not in log


async def test_purge_service_failure_only_warns(gw: GW):
    task_id = await gw.submit(payload([cache("c")], COUNT.format(d="c")), scopes=scopes("c"))
    await gw.run(purgeCacheBaseURL="http://127.0.0.1:9/api/purge-cache/v1")
    log = await gw.log(task_id)
    assert await gw.resolution(task_id) == "completed/completed"
    assert "[mounts] Could not reach purgecache service to see if caches need purging:" in log


async def test_state_is_consistent_after_sigkill(gw: GW):
    """A worker killed while a cache is mounted: the next one does not trust that cache."""
    config = gw.write_config(gw.tmp / "gw.config", numberOfTasksToRun=1)
    body = payload([cache("c")], f"{COUNT.format(d='c')}; echo $$ > pid; touch started; sleep 60")
    killed = await gw.submit(body, scopes=scopes("c"))
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "run",
        "--config",
        str(config),
        cwd=gw.tmp,
        start_new_session=True,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        started = await wait_for(lambda: [d for d in gw.task_dirs() if (d / "started").exists()], timeout=60)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
    os.killpg(int((started[0] / "pid").read_text()), signal.SIGKILL)  # the task's own session
    state = json.loads((gw.tmp / "directory-caches.json").read_text())
    assert [e["mountedIn"] is not None for e in state.values()] == [True]
    after = await gw.submit(payload([cache("c")], COUNT.format(d="c")), scopes=scopes("c"))
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    log = await gw.log(after)
    assert "c=1" in log and "No existing writable directory cache 'c'" in log
    state = json.loads((gw.tmp / "directory-caches.json").read_text())
    assert [e["mountedIn"] for e in state.values()] == [None]
    assert len(cache_dirs(gw)) == 1
    assert await gw.resolution(killed) == "running/None"  # until its claim expires


async def test_cancelled_during_a_download(gw: GW):
    """Aborted mid-mount: the half-done download is deleted, the cache mounted before it purged."""
    started, finished = asyncio.Event(), asyncio.Event()

    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(100 * 1024 * 1024)})
        await response.prepare(request)
        await response.write(bytes(1024 * 1024))
        started.set()
        await finished.wait()  # stalls until the test ends
        return response

    app = web.Application()
    app.router.add_get("/stall", stall)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        mounts: list[dict[str, Any]] = [
            cache("c"),
            {"file": "big", "content": {"url": f"http://127.0.0.1:{port}/stall"}},
        ]
        task_id = await gw.submit(payload(mounts), scopes=scopes("c"))
        worker = asyncio.create_task(gw.run(taskStatusPollIntervalSecs=1))
        await asyncio.wait_for(started.wait(), 30)
        async with aiohttp.ClientSession() as session:
            await gw.queue(session).cancelTask(task_id)
        assert await asyncio.wait_for(worker, 60) == ExitCode.TASKS_COMPLETE
    finally:
        finished.set()
        await runner.cleanup()
    assert await gw.resolution(task_id) == "exception/canceled"
    log = await gw.log(task_id)
    assert "[mounts] Purging caches since the task was aborted" in log
    assert os.listdir(gw.tmp / "downloads") == [] and cache_dirs(gw) == []
    assert json.loads((gw.tmp / "file-caches.json").read_text()) == {}
    assert json.loads((gw.tmp / "directory-caches.json").read_text()) == {}


async def test_an_unusable_caches_dir_stops_the_worker_at_start(gw: GW, caplog: pytest.LogCaptureFixture):
    blocker = gw.tmp / "a-file"
    blocker.write_text("not a directory")
    assert await gw.run(cachesDir=str(blocker / "caches")) == ExitCode.INTERNAL_ERROR
    assert any("cannot use cachesDir/downloadsDir" in r.getMessage() for r in caplog.records)
