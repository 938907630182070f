"""Live log latency: how long a line a task prints takes to reach a connected live log reader.

    python -m bench.livelog_latency [--lines 500] [--interval 0.01] [--filler-kib 16]
    python -m bench livelog_latency

A real worker (in this process) runs one task against tc-local (its own process). The task
waits until a reader (a separate process, reading `GET /log/<token>` with http.client) is
connected, then prints `STAMP <time>` lines every `--interval` seconds, each after
`--filler-kib` KiB of other output (a busy log). Latency = the time the reader received the
chunk holding a line - the time printed in it. Target: p99 <= 250 ms.

The limit measured in the same run: the same script with its stdout piped straight into the
same reader (process scheduling and pipe latency, with no worker at all).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import slugid
import taskcluster.aio

from bench.tclocal_cycle import start_server
from generic_worker.config import config_from_mapping
from generic_worker.engine.worker import Worker
from generic_worker.features import build_features
from tclocal.core.timestamps import from_now

WORKER_TYPE = "bench-livelog"
TARGET_P99 = 0.250

TASK_SCRIPT = r"""
import os, sys, time
go, lines, interval, filler_kib = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
while not os.path.exists(go):
    time.sleep(0.005)
filler = (b"." * 1023 + b"\n") * filler_kib
for _ in range(lines):
    if filler:
        os.write(1, filler)
    os.write(1, f"STAMP {time.time():.6f}\n".encode())
    time.sleep(interval)
"""

READER_SCRIPT = r"""
import http.client, json, os, sys, time, urllib.parse
if sys.argv[1] == "-":  # the floor: straight from a pipe
    read = lambda: os.read(0, 1 << 20)
else:
    url = urllib.parse.urlsplit(sys.argv[1])
    connection = http.client.HTTPConnection(url.hostname, url.port)
    connection.request("GET", url.path)
    response = connection.getresponse()
    assert response.status == 200, response.status
    read = lambda: response.read1(1 << 20)
print("CONNECTED", flush=True)
latencies, rest = [], b""
while chunk := read():
    arrived = time.time()
    *lines, rest = (rest + chunk).split(b"\n")
    latencies += [arrived - float(line[6:]) for line in lines if line.startswith(b"STAMP ")]
print(json.dumps(latencies), flush=True)
"""


def task_argv(args: argparse.Namespace, go: Path) -> list[str]:
    """The printing task's command line (the same through the worker and through a bare pipe)."""
    return [
        sys.executable,
        "-c",
        TASK_SCRIPT,
        str(go),
        str(args.lines),
        str(args.interval),
        str(args.filler_kib),
    ]


def task_definition(args: argparse.Namespace, go: Path) -> dict[str, Any]:
    argv = task_argv(args, go)
    return {
        "provisionerId": "bench",
        "workerType": WORKER_TYPE,
        "created": from_now(0),
        "deadline": from_now(3600),
        "expires": from_now(86400),
        "payload": {"command": [argv], "maxRunTime": 600},
        "metadata": {
            "name": "livelog latency",
            "description": "bench",
            "owner": "b@example.com",
            "source": "https://x/",
        },
    }


async def live_log_url(queue: Any, session: aiohttp.ClientSession, task_id: str) -> str:
    """The reference artifact's URL, once the worker has published it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listing = await queue.listArtifacts(task_id, "0")
        if any(
            a["name"] == "public/logs/live.log" and a["storageType"] == "reference"
            for a in listing["artifacts"]
        ):
            url = queue.buildSignedUrl("getArtifact", task_id, "0", "public/logs/live.log")
            async with session.get(url, allow_redirects=False) as response:
                return str(response.headers["Location"])
        await asyncio.sleep(0.05)
    raise RuntimeError("the live log artifact never appeared")


async def through_the_worker(args: argparse.Namespace, tmp: Path) -> list[float]:
    process, options = await start_server(tmp / "tc")
    try:
        async with aiohttp.ClientSession() as session:
            queue = taskcluster.aio.Queue(options, session=session)
            auth = taskcluster.aio.Auth(options, session=session)
            scopes = [f"queue:claim-work:bench/{WORKER_TYPE}", "queue:worker-id:bench/w1", "queue:status:*"]
            client = await auth.createClient(
                "bench/livelog", {"expires": from_now(3600), "description": "b", "scopes": scopes}
            )
            go = tmp / "go"
            task_id = slugid.nice()
            await queue.createTask(task_id, task_definition(args, go))
            config, _ = config_from_mapping(
                {
                    "rootURL": options["rootUrl"], "clientId": "bench/livelog", "accessToken": client["accessToken"],
                    "provisionerId": "bench", "workerType": WORKER_TYPE, "workerGroup": "bench", "workerId": "w1",
                    "publicIP": "127.0.0.1", "subdomain": "", "livelogGETPort": 0, "taskclusterProxyPort": 0,
                    "tasksDir": str(tmp / "tasks"), "cachesDir": str(tmp / "caches"), "downloadsDir": str(tmp / "dl"),
                    "numberOfTasksToRun": 1, "cleanUpTaskDirs": True, "requiredDiskSpaceMegabytes": 1,
                }
            )  # fmt: skip
            worker = asyncio.create_task(Worker(config, build_features(config), state_dir=tmp).run())
            url = await live_log_url(queue, session, task_id)
            reader = await asyncio.create_subprocess_exec(
                sys.executable, "-c", READER_SCRIPT, url, stdout=asyncio.subprocess.PIPE
            )
            assert reader.stdout is not None
            assert (await reader.stdout.readline()).strip() == b"CONNECTED"
            go.touch()
            output, _ = await reader.communicate()
            code = await worker
            assert code == 0, code
            status = (await queue.status(task_id))["status"]["runs"][0]
            assert status["state"] == "completed", status
    finally:
        process.terminate()
        await process.wait()
    latencies: list[float] = json.loads(output.splitlines()[-1])
    return latencies


async def straight_from_a_pipe(args: argparse.Namespace, tmp: Path) -> list[float]:
    go = tmp / "go-pipe"
    go.touch()
    read_end, write_end = os.pipe()
    argv = task_argv(args, go)
    reader = await asyncio.create_subprocess_exec(
        sys.executable, "-c", READER_SCRIPT, "-", stdin=read_end, stdout=asyncio.subprocess.PIPE
    )
    task = await asyncio.create_subprocess_exec(*argv, stdout=write_end)
    os.close(read_end)
    os.close(write_end)
    output, _ = await reader.communicate()
    await task.wait()
    latencies: list[float] = json.loads(output.splitlines()[-1])
    return latencies


def describe(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100)
    return f"p50 {cuts[49] * 1000:.2f} ms, p99 {cuts[98] * 1000:.2f} ms, max {max(samples) * 1000:.2f} ms"


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-livelog-") as tmp_name:
        tmp = Path(tmp_name)
        live = await through_the_worker(args, tmp)
        floor = await straight_from_a_pipe(args, tmp)
    assert len(live) == args.lines, (len(live), args.lines)
    p99 = statistics.quantiles(live, n=100)[98]
    print(
        f"live log latency: {describe(live)} ({args.lines} lines, one every {args.interval * 1000:.0f} ms "
        f"after {args.filler_kib} KiB of other output); target p99 <= {TARGET_P99 * 1000:.0f} ms: "
        f"{'met' if p99 <= TARGET_P99 else 'NOT met'}"
    )
    print(f"  limit: the same output read straight from a pipe: {describe(floor)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=500)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--filler-kib", type=int, default=16)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
