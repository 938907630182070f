"""The stored backing log is one valid gzip of exactly the task's log, however the task ends.

The task prints several MiB (so the copy made while it runs is used) and goes on printing when
it is aborted: by maxRunTime, by a cancellation, or by the worker's shutdown on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import zlib

import aiohttp
import pytest

from generic_worker.exitcodes import ExitCode

from .harness import GW, wait_for
from .test_lifecycle import start_worker

# ~8 MiB at once, then ~4 MiB/s until killed; `started` once the first burst is out.
ENDLESS = (
    "head -c 6000000 /dev/urandom | base64; touch started; "
    "while :; do head -c 150000 /dev/urandom | base64; sleep 0.05; done"
)
FINITE = "head -c 6000000 /dev/urandom | base64; echo done"


async def stored_log(gw: GW, task_id: str) -> bytes:
    status, headers, body = await gw.fetch(task_id, "public/logs/live_backing.log")
    assert status == 200 and headers.get("Content-Encoding") == "gzip"
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    content = decompressor.decompress(body)
    assert decompressor.eof and decompressor.unused_data == b""  # one complete member, nothing more
    return content


def started(gw: GW) -> bool:
    return any((d / "started").exists() for d in gw.task_dirs())


@pytest.mark.parametrize("ending", ["exit", "max-run-time", "cancel", "sigterm"])
async def test_stored_log_is_an_exact_gzip_of_the_task_log(gw: GW, ending: str) -> None:
    script = FINITE if ending == "exit" else ENDLESS
    max_run_time = 3 if ending == "max-run-time" else 120
    task_id = await gw.submit({"command": [["/bin/sh", "-c", script]], "maxRunTime": max_run_time})
    expected = {
        "exit": "completed/completed",
        "max-run-time": "failed/failed",
        "cancel": "exception/canceled",
        "sigterm": "exception/worker-shutdown",
    }[ending]
    if ending == "sigterm":
        proc = await start_worker(gw.write_config(gw.tmp / "gw.json"), gw.tmp)
        await wait_for(lambda: started(gw))
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == ExitCode.WORKER_SHUTDOWN
    else:
        worker = asyncio.create_task(gw.run(taskStatusPollIntervalSecs=1))
        if ending == "cancel":
            await wait_for(lambda: started(gw))
            async with aiohttp.ClientSession() as session:
                await gw.queue(session).cancelTask(task_id)
        assert await asyncio.wait_for(worker, 60) == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == expected
    local = next(gw.task_dirs()) / "generic-worker" / "live_backing.log"
    content = await stored_log(gw, task_id)
    assert content == local.read_bytes()
    assert len(content) > 8_000_000
