"""The worker against a misbehaving network between it and tc-local (a fault-injecting proxy)."""

from collections.abc import AsyncIterator

import pytest

from generic_worker.exitcodes import ExitCode
from tests.artifacts.faulty_network import FaultyProxy, is_blob_put, is_create_artifact

from .harness import GW


@pytest.fixture
async def proxy(gw: GW) -> AsyncIterator[FaultyProxy]:
    proxy = FaultyProxy(gw.tc.root_url)
    await proxy.start()
    gw.raw_config["rootURL"] = proxy.url
    yield proxy
    await proxy.stop()


def is_claim_work(method: str, path: str) -> bool:
    return method == "POST" and "/claim-work/" in path


async def test_create_artifact_5xx_storm_is_retried(gw: GW, proxy: FaultyProxy):
    fault = proxy.add(is_create_artifact, "status:503", times=4)
    payload = {
        "command": [["/bin/sh", "-c", "echo data > a.txt"]],
        "maxRunTime": 30,
        "artifacts": [{"type": "file", "path": "a.txt", "name": "public/a.txt"}],
    }
    task_id = await gw.submit(payload)
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    assert fault.hits == 4
    assert await gw.resolution(task_id) == "completed/completed"
    assert await gw.content(task_id, "public/a.txt") == b"data\n"


async def test_network_error_during_upload_is_an_error(gw: GW, proxy: FaultyProxy):
    proxy.add(is_blob_put, "cut:10")
    payload = {
        "command": [["/bin/sh", "-c", "head -c 200000 /dev/urandom > a.bin"]],
        "maxRunTime": 30,
        "artifacts": [{"type": "file", "path": "a.bin", "name": "public/a.bin"}],
    }
    task_id = await gw.submit(payload)
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "exception/resource-unavailable"
    assert proxy.seen.count("PUT", "/blobs/") >= 2  # retried before giving up
    log = gw.local_log()
    assert "public/a.bin" in log


async def test_claim_work_failures_do_not_stop_the_worker(gw: GW, proxy: FaultyProxy):
    fault = proxy.add(is_claim_work, "status:500", times=7)
    task_id = await gw.submit({"command": [["true"]], "maxRunTime": 30})
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    assert fault.hits == 7
    assert await gw.resolution(task_id) == "completed/completed"
