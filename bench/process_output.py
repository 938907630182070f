"""Process layer figures (peers.md B3, B6, B16), each beside the limit measured in the same run.

    python -m bench.process_output [--size-mib 1024] [--dir /dev/shm] [--rounds 5] [--spawns 300]

(a) Raw log throughput (B6): a task writes SIZE bytes of `head -c SIZE /dev/zero` to stdout; the
    pump copies it into a file through an OutputSink. Limit: the same command writing straight
    to a file of its own (no pipe, no worker); `head | cat > file` is shown as the C pipe-copy
    reference. Targets: rate >= 70 % of the limit; the task's own CPU time <= +10 %.
(a') Task slowdown: a CPU-bound task printing ~100 MiB/s of short lines, its wall time with
    stdout on a file vs through the pump. Target <= +10 %.
(b) Spawn overhead (B3): `TaskProcesses.run()` of /bin/true (session, 1 MiB pipe, pump thread,
    pidfd watch, drain) against `subprocess.run(['/bin/true'])`, p50 and p95 over N runs each.
(c) Kill latency and completeness (B16): abort of a tree with a `setsid` escapee, a double-forked
    daemon, a SIGTERM-ignoring child and a pipe-holding grandchild, grace period G. Target: zero
    survivors, abort time <= G + 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from generic_worker.engine.tasklog import TaskLog
from generic_worker.process import Command, TaskProcesses, enable_subreaper

MiB = 1 << 20
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "TASK_ID": "bench"}
MARKER = ("TASK_ID", "bench")


class FileSink:
    """The simplest real sink: append every chunk to a file (one pump writes at a time)."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def close(self) -> None:
        os.close(self.fd)


class NullSink:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bytes = 0

    def write(self, data: bytes) -> None:
        with self.lock:
            self.bytes += len(data)


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def baseline(argv: list[str], path: Path, *, shell: bool = False) -> tuple[float, float]:
    """The child writes the file itself. Returns (wall seconds spawn to reaped, child CPU)."""
    with path.open("wb") as out:
        cpu = cpu_children()
        started = time.perf_counter()
        subprocess.run(argv, stdout=out, check=True, shell=shell)
        return time.perf_counter() - started, cpu_children() - cpu


async def pumped(argv: list[str], path: Path, *, task_log: bool = False) -> tuple[float, float, float, float]:
    """Through the pump: (wall until run() returned, task wall, task CPU, worker CPU).

    Into a FileSink (read + write through Python), or with `task_log` into the worker's real
    `TaskLog`, which takes the bytes with splice(2) where the OS has it.
    """
    sink: FileSink | TaskLog = TaskLog(path) if task_log else FileSink(path)
    procs = TaskProcesses(MARKER, sink)
    try:
        cpu = cpu_self()
        started = time.perf_counter()
        result = await procs.run(Command(tuple(argv), path.parent, ENV))
        wall = time.perf_counter() - started
        cpu = cpu_self() - cpu
    finally:
        await procs.kill_all()
        sink.close()
    assert result.succeeded, result.describe()
    return wall, result.wall_time, result.user_time + result.system_time, cpu


async def throughput(size: int, work: Path, rounds: int) -> None:
    head = ["head", "-c", str(size), "/dev/zero"]
    out = work / "out"
    direct, piped, ours, spliced = [], [], [], []
    for _ in range(rounds):  # interleaved, so drift in machine load hits all alike
        direct.append(baseline(head, out))
        piped.append(baseline([f"{' '.join(head)} | cat"], out, shell=True))
        ours.append(await pumped(head, out))
        assert out.stat().st_size == size, "output lost"
        out.unlink()
        spliced.append(await pumped(head, out, task_log=True))
        assert out.stat().st_size == size, "output lost"
        out.unlink()
    limit, task_cpu_limit = min(direct)
    cat, _ = min(piped)
    wall, _task_wall, task_cpu, cpu = min(ours)
    log_wall, _, log_task_cpu, log_cpu = min(spliced)
    gib = size / (1 << 30)
    print(f"(a) raw log throughput, {size // MiB} MiB of `head -c` into {work} (best of {rounds})")
    print(f"    limit: the child writes the file itself {size / MiB / limit:6.0f} MiB/s ({limit:.2f} s)")
    print(f"    ref:   `head | cat > file` (C, no Python) {size / MiB / cat:6.0f} MiB/s ({cat:.2f} s)")
    print(f"    through the pump into a FileSink       {size / MiB / wall:6.0f} MiB/s ({wall:.2f} s)")
    print(f"    ratio to the limit {limit / wall:.0%} (target >= 70 %); to `| cat` {cat / wall:.0%}")
    print(
        f"    task CPU {task_cpu / gib:.2f} s/GiB vs {task_cpu_limit / gib:.2f} s/GiB writing the "
        f"file itself: {task_cpu / task_cpu_limit - 1:+.0%} (target <= +10 %)"
    )
    print(f"    worker CPU (pump thread) {cpu / gib:.2f} s per GiB of output")
    print(
        f"    through the pump into the TaskLog (splice) {size / MiB / log_wall:6.0f} MiB/s ({log_wall:.2f} s)"
    )
    print(
        f"    ratio to the limit {limit / log_wall:.0%}; task CPU {log_task_cpu / gib:.2f} s/GiB "
        f"({log_task_cpu / task_cpu_limit - 1:+.0%}); worker CPU {log_cpu / gib:.2f} s per GiB"
    )


# A build-like task: CPU work between lines, about 90 bytes a line.
BUSY = r"""
import hashlib, sys
h = hashlib.sha256()
out = sys.stdout.buffer
for i in range({lines}):
    h.update(b"%d" % i)
    out.write(b"line %09d %s\n" % (i, h.hexdigest().encode()))
"""


async def task_slowdown(lines: int, work: Path, rounds: int) -> None:
    argv = [sys.executable, "-c", BUSY.format(lines=lines)]
    out = work / "out"
    direct, ours = [], []
    for _ in range(rounds):
        direct.append(baseline(argv, out)[0])
        ours.append((await pumped(argv, out))[1])
        out.unlink()
    limit, task = min(direct), min(ours)
    print(f"(a') busy task printing {lines} lines (~{lines * 90 / limit / MiB:.0f} MiB/s), best of {rounds}")
    print(
        f"    stdout to a file {limit:.2f} s, through the pump {task:.2f} s: {task / limit - 1:+.0%} (target <= +10 %)"
    )


def raw_spawn() -> float:
    """The limit: one subprocess.run of /bin/true, blocking (seconds)."""
    started = time.perf_counter()
    subprocess.run(["/bin/true"], check=True)
    return time.perf_counter() - started


async def spawn_overhead(count: int, work: Path) -> None:
    procs = TaskProcesses(MARKER, NullSink())
    ours: list[float] = []
    raw: list[float] = []
    cmd = Command(("/bin/true",), work, ENV)
    try:
        for _ in range(count):
            started = time.perf_counter()
            result = await procs.run(cmd)
            ours.append(time.perf_counter() - started)
            assert result.succeeded
            raw.append(raw_spawn())
    finally:
        await procs.kill_all()

    def pct(xs: list[float], q: int) -> float:
        return statistics.quantiles(xs, n=100)[q - 1] * 1000

    print(f"(b) spawn overhead, /bin/true x {count}")
    print(f"    limit: subprocess.run  p50 {pct(raw, 50):.2f} ms  p95 {pct(raw, 95):.2f} ms")
    print(f"    TaskProcesses.run()    p50 {pct(ours, 50):.2f} ms  p95 {pct(ours, 95):.2f} ms")
    print(f"    ratio p50 {pct(ours, 50) / pct(raw, 50):.2f}x")


HOSTILE = """
setsid sleep 1000 & echo "pid $!"
( setsid sh -c 'sleep 1000 & echo "pid $!"' & )
sh -c 'trap "" TERM; exec sleep 1000' & echo "pid $!"
sleep 1000 & echo "pid $!"
echo "pid $$"
wait
"""


class LineSink(NullSink):
    def __init__(self) -> None:
        super().__init__()
        self.data = b""
        self.event = threading.Event()

    def write(self, data: bytes) -> None:
        with self.lock:
            self.data += data
            if self.data.count(b"pid ") == 5:
                self.event.set()


async def kill_latency(grace: float, work: Path) -> None:
    sink = LineSink()
    procs = TaskProcesses(MARKER, sink, grace_period=grace)
    running = asyncio.ensure_future(procs.run(Command(("sh", "-c", HOSTILE), work, ENV)))
    assert await asyncio.to_thread(sink.event.wait, 10)
    pids = [int(line.split()[1]) for line in sink.data.splitlines() if line.startswith(b"pid ")]
    started = time.perf_counter()
    await procs.abort()
    took = time.perf_counter() - started
    await running
    await procs.kill_all()
    survivors = [pid for pid in pids if psutil.pid_exists(pid)]  # zombies count
    print(f"(c) kill latency, hostile tree of {len(pids)} processes, grace {grace:.2f} s")
    print(f"    abort took {took * 1000:.0f} ms = grace + {(took - grace) * 1000:.0f} ms (target <= +100 ms)")
    print(f"    survivors (zombies included): {len(survivors)} (target 0)")


async def run(args: argparse.Namespace) -> None:
    print(f"machine: {os.cpu_count()} CPUs; subreaper: {enable_subreaper()}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        await throughput(args.size_mib * MiB, work, args.rounds)
        await task_slowdown(args.lines, work, args.rounds)
        await spawn_overhead(args.spawns, work)
        await kill_latency(args.grace, work)


def main() -> None:
    """Measure and print the three figures with their limits."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    parser.add_argument("--dir", default=shm, help="where the output files go (default tmpfs)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--spawns", type=int, default=300)
    parser.add_argument("--grace", type=float, default=0.5)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
