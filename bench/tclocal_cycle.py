"""tc-local's own task cycle rate, beside the machine's loopback request rate measured in the same run.

    python -m bench.tclocal_cycle [--cycles 1500] [--concurrency 8]

One cycle is what a worker and a scheduler cost the platform per task: createTask -> claimWork ->
createArtifact (s3) -> PUT of a small log to the signed URL -> reportCompleted, all through the
official aio client with real Hawk signatures, against a `tc-local serve` in its own process.
Target: >= 100 cycles/s on a 2-core machine, so tc-local never limits worker benchmarks.

The limit printed beside it is the loopback rate of unauthenticated `GET /api/queue/v1/ping`
against the same server with the same concurrency, divided by the 5 requests of a cycle: the
cycle rate tc-local would reach if its own work (auth, scopes, SQLite) cost nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import slugid
import taskcluster.aio

from tclocal.core.timestamps import from_now

REQUESTS_PER_CYCLE = 5
TARGET = 100.0
LOG = b"[taskcluster 2026-01-01T00:00:00.000Z] Task finished\n" * 20


async def start_server(data_dir: Path) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    """Start `tc-local serve` on a free port; return it and root client options."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tclocal", "serve", "--port", "0", "--data-dir", str(data_dir),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    text = ""
    while "TASKCLUSTER_ACCESS_TOKEN=" not in text:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        if not line:
            raise RuntimeError(f"tc-local did not start:\n{text}")
        text += line.decode()
    fields = dict(re.findall(r"export (TASKCLUSTER_\w+)=(\S+)", text))
    options = {
        "rootUrl": fields["TASKCLUSTER_ROOT_URL"],
        "credentials": {
            "clientId": fields["TASKCLUSTER_CLIENT_ID"],
            "accessToken": fields["TASKCLUSTER_ACCESS_TOKEN"],
        },
        "maxRetries": 0,
    }
    return process, options


def task_definition(worker_type: str) -> dict[str, Any]:
    """A minimal task on the worker's own queue."""
    return {
        "provisionerId": "bench",
        "workerType": worker_type,
        "created": from_now(0),
        "deadline": from_now(3600),
        "expires": from_now(86400),
        "payload": {},
        "metadata": {
            "name": "cycle",
            "description": "bench",
            "owner": "b@example.com",
            "source": "https://x/",
        },
    }


async def worker(options: dict[str, Any], session: aiohttp.ClientSession, n: int, cycles: int) -> None:
    """Run `cycles` full task cycles on a queue of this worker's own."""
    worker_type = f"cycle-{n}"
    queue = taskcluster.aio.Queue(options, session=session)
    for _ in range(cycles):
        task = task_definition(worker_type)
        task_id = slugid.nice()
        await queue.createTask(task_id, task)
        claims = await queue.claimWork(
            f"bench/{worker_type}", {"workerGroup": "bench", "workerId": f"w{n}", "tasks": 1}
        )
        claim = claims["tasks"][0]
        as_task = taskcluster.aio.Queue({**options, "credentials": claim["credentials"]}, session=session)
        run_id = claim["runId"]
        created = await as_task.createArtifact(
            task_id,
            run_id,
            "public/logs/live_backing.log",
            {"storageType": "s3", "contentType": "text/plain", "expires": task["expires"]},
        )
        async with session.put(
            created["putUrl"], data=LOG, headers={"Content-Type": "text/plain"}
        ) as response:
            response.raise_for_status()
        await as_task.reportCompleted(task_id, run_id)


async def ping_rate(root_url: str, session: aiohttp.ClientSession, concurrency: int, seconds: float) -> float:
    """Unauthenticated requests per second the server answers over loopback."""
    url = f"{root_url}/api/queue/v1/ping"
    count = 0
    stop = time.monotonic() + seconds

    async def loop() -> None:
        nonlocal count
        while time.monotonic() < stop:
            async with session.get(url) as response:
                await response.read()
            count += 1

    started = time.monotonic()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return count / (time.monotonic() - started)


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(args: argparse.Namespace) -> float:
    """Measure and print; return the cycle rate."""
    with tempfile.TemporaryDirectory(prefix="bench-tclocal-") as data_dir:
        process, options = await start_server(Path(data_dir))
        try:
            connector = aiohttp.TCPConnector(limit=args.concurrency * 2)
            async with aiohttp.ClientSession(connector=connector) as session:
                limit = await ping_rate(options["rootUrl"], session, args.concurrency, 2.0)
                per_worker = max(1, args.cycles // args.concurrency)
                await asyncio.gather(*(worker(options, session, n, 5) for n in range(args.concurrency)))
                cpu_before = cpu_seconds(process.pid)
                started = time.monotonic()
                await asyncio.gather(
                    *(worker(options, session, n, per_worker) for n in range(args.concurrency))
                )
                elapsed = time.monotonic() - started
                server_cpu = cpu_seconds(process.pid) - cpu_before
        finally:
            process.terminate()
            await process.wait()
    total = per_worker * args.concurrency
    rate = float(total / elapsed)
    limit_cycles = limit / REQUESTS_PER_CYCLE
    print(f"tc-local task cycle: {rate:.0f} cycles/s ({total} cycles, concurrency {args.concurrency})")
    print(
        f"  limit: loopback ping {limit:.0f} requests/s = {limit_cycles:.0f} cycles/s "
        f"({REQUESTS_PER_CYCLE} requests per cycle); ratio {rate / limit_cycles:.0%}"
    )
    print(f"  server CPU per cycle: {server_cpu / total * 1000:.2f} ms")
    print(f"  target >= {TARGET:.0f} cycles/s: {'met' if rate >= TARGET else 'NOT met'}")
    return rate


def main() -> None:
    """Run the measurement with command-line arguments."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=1500, help="cycles to time")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent workers")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
