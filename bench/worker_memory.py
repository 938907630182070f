"""Worker memory: idle RSS, and RSS growth per task over many tasks (leaks).

    python -m bench.worker_memory [--tasks 1000]

The worker runs as its own process (`generic-worker run`) against tc-local (another process).
Idle RSS is read once every feature is initialised and the worker waits for work; growth is
the RSS after all tasks minus the RSS after the first 10 % (warm-up: caches, pools, imports),
per task. Targets: idle <= 60 MiB, growth <= 1 KiB per task. The limit printed beside them is
the RSS of a bare Python interpreter that imported the same libraries, measured in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import slugid
import taskcluster.aio

from bench._worker_pool import trivial_task, worker_config
from bench.tclocal_cycle import start_server

WORKER_TYPE = "bench-memory"
SCRIPT = Path(sys.executable).parent / "generic-worker"


def rss_kib(pid: int) -> int:
    """Current resident set size of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def baseline_kib() -> int:
    """RSS of an interpreter that imported what the worker imports (its floor)."""
    code = (
        "import taskcluster.aio, aiohttp.web, jsonschema, psutil, zstandard, yaml;"
        "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])"
    )
    return int(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp_name:
        tmp = Path(tmp_name)
        server, options = await start_server(tmp / "tc")
        try:
            async with aiohttp.ClientSession() as session:
                queue = taskcluster.aio.Queue(options, session=session)
                config = await worker_config(options, session, WORKER_TYPE, tmp, numberOfTasksToRun=0)
                (tmp / "gw.json").write_text(json.dumps(config))
                worker = await asyncio.create_subprocess_exec(
                    str(SCRIPT),
                    "run",
                    "--config",
                    str(tmp / "gw.json"),
                    cwd=tmp,
                    stderr=asyncio.subprocess.PIPE,
                )
                assert worker.stderr is not None
                while b"All features initialised" not in await worker.stderr.readline():
                    pass
                await asyncio.sleep(2)  # let it settle into its first long poll
                idle = rss_kib(worker.pid)
                for i in range(args.tasks):
                    await queue.createTask(slugid.nice(), trivial_task(WORKER_TYPE, ["true"], f"t{i}"))
                warm = args.tasks // 10
                warm_rss = last_rss = 0
                started = time.monotonic()
                # The worker logs "Resolved <n> tasks in total so far." after each task.
                while True:
                    line = (await worker.stderr.readline()).decode()
                    match = re.search(r"Resolved (\d+) tasks in total", line)
                    if not match:
                        continue
                    resolved = int(match.group(1))
                    if resolved == warm:
                        warm_rss = rss_kib(worker.pid)
                    if resolved == args.tasks:
                        last_rss = rss_kib(worker.pid)
                        break
                elapsed = time.monotonic() - started
                worker.send_signal(signal.SIGINT)
                await worker.communicate()
        finally:
            server.terminate()
            await server.wait()
    floor = baseline_kib()
    growth = (last_rss - warm_rss) * 1024 / (args.tasks - warm)
    print(
        f"worker idle RSS: {idle / 1024:.1f} MiB; target <= 60: {'met' if idle <= 60 * 1024 else 'NOT met'}"
    )
    print(f"  limit: a bare interpreter with the same libraries: {floor / 1024:.1f} MiB")
    print(
        f"RSS growth: {growth:.0f} bytes/task over {args.tasks - warm} tasks "
        f"({warm_rss / 1024:.1f} -> {last_rss / 1024:.1f} MiB, {elapsed:.0f}s); "
        f"target <= 1024: {'met' if growth <= 1024 else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
