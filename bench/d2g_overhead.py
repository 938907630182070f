"""d2g overhead: a trivial docker-worker task beside the same native task, and image cache vs load.

    python -m bench.d2g_overhead [--tasks 10]

* claim -> first output: from the run's `started` time (set by the queue at the claim) to the
  moment the command prints, for `--tasks` native tasks and as many d2g tasks (a task image,
  loaded once then taken from the image cache). Both print /proc/uptime (10 ms resolution;
  containers share the host's clock), converted to wall time in this process. The difference is
  d2g's overhead: `docker run` itself (the limit shown: a bare `docker run` of the same image,
  measured in the same run) plus the worker's image check and env file.
* image ready: `docker load` of the image tarball beside the cache path (SHA-256 of the tarball
  plus `docker image inspect`), medians of 5.
Needs a Docker daemon and Debian's busybox-static; says so and stops otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import grp
import os
import shutil
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
from generic_worker.d2g import docker
from generic_worker.engine.worker import Worker
from generic_worker.features import build_features
from generic_worker.mounts.files import hash_file
from generic_worker.timefmt import parse_tc

WORKER_TYPE = "bench-d2g"
IMAGE = "gw-d2g-bench/busybox:1"
UPTIME = ["cat", "/proc/uptime"]


def build_image(tmp: Path) -> Path:
    """A one-binary busybox image, `docker import`ed and `docker save`d; returns the tarball."""
    root = tmp / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    for applet in ("sh", "cat", "true"):
        (root / "bin" / applet).symlink_to("busybox")
    rootfs = subprocess.run(["tar", "-C", str(root), "-c", "."], check=True, capture_output=True).stdout
    subprocess.run(["docker", "import", "-", IMAGE], input=rootfs, check=True, capture_output=True)
    tarball = tmp / "image.tar"
    subprocess.run(["docker", "save", "-o", str(tarball), IMAGE], check=True)
    return tarball


def join_docker_group() -> None:
    """The insecure engine runs d2g tasks only when the worker's user is in group docker (upstream's rule)."""
    try:
        gid = grp.getgrnam("docker").gr_gid
    except KeyError:
        return
    if os.geteuid() == 0 and gid not in os.getgroups():
        os.setgroups([*os.getgroups(), gid])


def uptime_offset() -> float:
    """Wall time minus /proc/uptime, now."""
    return time.time() - float(Path("/proc/uptime").read_text().split()[0])


def first_outputs(tasks_dir: Path, offset: float) -> dict[str, float]:
    """taskId -> wall time its command first printed (the line after `Executing command 0`)."""
    found = {}
    for log in tasks_dir.glob("task_*/generic-worker/live_backing.log"):
        lines = log.read_text().splitlines()
        task_id = next(line.rsplit(" ", 1)[1] for line in lines if "] Task ID: " in line)
        index = next((i for i, line in enumerate(lines) if "Executing command 0" in line), None)
        if index is not None and not lines[index + 1].startswith("[taskcluster"):
            found[task_id] = float(lines[index + 1].split()[0]) + offset
    return found


def bare_docker_run_p50(n: int = 5) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(["docker", "run", "--rm", "--log-driver=none", IMAGE, "true"], check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def image_ready_times(tarball: Path, n: int = 5) -> tuple[float, float]:
    loads, cached = [], []
    for _ in range(n):
        start = time.perf_counter()
        await docker.load(tarball)
        loads.append(time.perf_counter() - start)
        start = time.perf_counter()
        await asyncio.to_thread(hash_file, tarball)
        await docker.image_id(IMAGE)
        cached.append(time.perf_counter() - start)
    return statistics.median(loads), statistics.median(cached)


async def run_tasks(tmp: Path, tarball: Path, count: int) -> tuple[list[float], list[float]]:
    process, options = await start_server(tmp / "tc")
    try:
        async with aiohttp.ClientSession() as session:
            queue = taskcluster.aio.Queue(options, session=session)
            producer = slugid.nice()
            publish = trivial_task(WORKER_TYPE, ["cp", str(tarball), "image.tar"], "image")
            publish["payload"]["artifacts"] = [
                {"type": "file", "path": "image.tar", "name": "public/image.tar"}
            ]
            await queue.createTask(producer, publish)
            native, d2g = [], []
            for i in range(count):
                native.append(slugid.nice())
                await queue.createTask(native[-1], trivial_task(WORKER_TYPE, UPTIME, f"native {i}"))
                d2g.append(slugid.nice())
                task = trivial_task(WORKER_TYPE, UPTIME, f"d2g {i}")
                image = {"type": "task-image", "taskId": producer, "path": "public/image.tar"}
                task["payload"] = {"image": image, "command": UPTIME, "maxRunTime": 60}
                task["dependencies"] = [producer]
                await queue.createTask(d2g[-1], task)
            raw = await worker_config(
                options,
                session,
                WORKER_TYPE,
                tmp,
                numberOfTasksToRun=2 * count + 1,
                cleanUpTaskDirs=False,
                d2gConfig={"enableD2G": True, "logTranslation": False},
            )
            config, _ = config_from_mapping(raw)
            assert await Worker(config, build_features(config), state_dir=tmp).run() == 0
            offset = uptime_offset()
            outputs = first_outputs(tmp / "tasks", offset)
            delays: dict[str, float] = {}
            for task_id in native + d2g:
                run0: dict[str, Any] = (await queue.status(task_id))["status"]["runs"][0]
                assert run0["state"] == "completed", (task_id, run0)
                delays[task_id] = outputs[task_id] - parse_tc(run0["started"]).timestamp()
    finally:
        process.terminate()
        await process.wait()
    # The first d2g task loads the image; the others take it from the cache.
    return [delays[t] for t in native], [delays[t] for t in d2g[1:]]


async def measure(tmp: Path, tarball: Path, tasks: int) -> None:
    """Run the tasks and the image timings; print the figures."""
    native, d2g = await run_tasks(tmp, tarball, tasks)
    bare = await asyncio.to_thread(bare_docker_run_p50)
    load, cached = await image_ready_times(tarball)
    size = (await asyncio.to_thread(tarball.stat)).st_size
    n50, d50 = statistics.median(native), statistics.median(d2g)
    print(
        f"claim -> first output: native p50 {n50 * 1000:.0f} ms, d2g p50 {d50 * 1000:.0f} ms (cached image)"
    )
    print(
        f"  d2g overhead {(d50 - n50) * 1000:.0f} ms; limit: a bare `docker run --rm` p50 {bare * 1000:.0f} ms "
        f"(overhead / docker run = {(d50 - n50) / bare:.2f})"
    )
    print(
        f"image ready: docker load p50 {load * 1000:.0f} ms, from the cache p50 {cached * 1000:.0f} ms "
        f"({load / cached:.1f}x faster; busybox image of {size / 1e6:.1f} MB: load grows with the image, the cache "
        "path only by hashing it)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=10)
    args = parser.parse_args()
    docker_up = subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0
    if not docker_up or not Path("/bin/busybox").exists():
        print("d2g overhead: skipped (needs a Docker daemon and busybox-static)")
        return
    join_docker_group()
    with tempfile.TemporaryDirectory(prefix="bench-d2g-") as tmp_name:
        tmp = Path(tmp_name)
        tarball = build_image(tmp)
        try:
            asyncio.run(measure(tmp, tarball, args.tasks))
        finally:
            subprocess.run(["docker", "rmi", IMAGE], capture_output=True, check=False)


if __name__ == "__main__":
    main()
