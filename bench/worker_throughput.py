"""Worker throughput and per-task overhead against tc-local, beside the machine's own limits.

    python -m bench.worker_throughput [--tasks 300]

* throughput: trivial tasks (`date +%s.%N`) run back to back by one worker (capacity 1, all
  default features, logs uploaded, task directories removed); target >= 20 tasks/s (the seed's
  worker waits 5 s between claims: ~0.2 tasks/s).
* overhead: claim response -> first command started, per task: from the run's `started` time
  (set by the queue when it hands out the claim) to the time the command itself prints;
  target p50 <= 25 ms.
* limits measured in the same run: `subprocess.run(["touch", f])` p50 (spawn cost) and the
  loopback round trip of an authenticated queue call (tc-local `ping`).
tc-local runs in its own process so it does not share the worker's core.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import slugid
import taskcluster.aio

from bench._worker_pool import trivial_task, worker_config
from bench.tclocal_cycle import start_server
from generic_worker.config import config_from_mapping
from generic_worker.engine.worker import Worker
from generic_worker.features import build_features
from generic_worker.timefmt import parse_tc

WORKER_TYPE = "bench-throughput"


def spawn_p50(tmp: Path, n: int = 200) -> float:
    """Median seconds for the machine to run `touch <file>` as a child process."""
    samples = []
    for i in range(n):
        start = time.perf_counter()
        subprocess.run(["touch", str(tmp / f"t{i}")], check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def rtt_p50(queue: Any, n: int = 200) -> float:
    """Median seconds of one authenticated call to tc-local over loopback."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await queue.ping()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def command_starts(tasks_dir: Path) -> list[tuple[str, float]]:
    """(taskId, time the command printed) from each task's local backing log."""
    found = []
    for log in tasks_dir.glob("task_*/generic-worker/live_backing.log"):
        lines = log.read_text().splitlines()
        task_id = next(line.rsplit(" ", 1)[1] for line in lines if "] Task ID: " in line)
        index = next(i for i, line in enumerate(lines) if "Executing command 0" in line)
        found.append((task_id, float(lines[index + 1])))
    return found


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp_name:
        tmp = Path(tmp_name)
        process, options = await start_server(tmp / "tc")
        try:
            async with aiohttp.ClientSession() as session:
                queue = taskcluster.aio.Queue(options, session=session)
                rtt = await rtt_p50(queue)
                ids = []
                for i in range(args.tasks):
                    task_id = slugid.nice()
                    await queue.createTask(
                        task_id, trivial_task(WORKER_TYPE, ["date", "+%s.%N"], f"trivial {i}")
                    )
                    ids.append(task_id)
                raw = await worker_config(
                    options, session, WORKER_TYPE, tmp, numberOfTasksToRun=args.tasks, cleanUpTaskDirs=False
                )
                config, _ = config_from_mapping(raw)
                worker = Worker(config, build_features(config), state_dir=tmp)
                started = time.monotonic()
                code = await worker.run()
                elapsed = time.monotonic() - started
                assert code == 0, code
                claimed = {}
                for task_id in ids:
                    run0 = (await queue.status(task_id))["status"]["runs"][0]
                    assert run0["state"] == "completed", run0
                    claimed[task_id] = parse_tc(run0["started"]).timestamp()
            delays = [
                command_start - claimed[task_id] for task_id, command_start in command_starts(tmp / "tasks")
            ]
            spawn = spawn_p50(tmp)
        finally:
            process.terminate()
            await process.wait()
    rate = args.tasks / elapsed
    p50 = statistics.median(delays)
    p95 = statistics.quantiles(delays, n=20)[-1]
    bound = 1 / (spawn + 6 * rtt)
    print(
        f"worker throughput: {rate:.1f} tasks/s ({args.tasks} trivial tasks, capacity 1); target >= 20: {'met' if rate >= 20 else 'NOT met'}"
    )
    print(
        f"  limit: spawn p50 {spawn * 1000:.2f} ms + 6 queue round trips (p50 {rtt * 1000:.2f} ms) = {bound:.0f} tasks/s; ratio {rate / bound:.0%}"
    )
    print(
        f"claim -> first command: p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms; target p50 <= 25 ms: {'met' if p50 <= 0.025 else 'NOT met'}"
    )
    print(f"  limit: spawn p50 {spawn * 1000:.2f} ms ({p50 / spawn:.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=300)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
