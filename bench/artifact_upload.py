"""Artifact upload throughput, each figure beside the limit measured on this machine in the same run.

    python -m bench.artifact_upload [--size-mib 1024] [--gzip-mb 100] [--levels 1]

(a) identity upload of a large incompressible file through `ArtifactUploader` (createArtifact,
    file read in worker threads, streaming PUT) vs the loopback PUT rate of the same bytes sent
    from memory to the same receiver. Target >= 70 %. The receiver is a sink in its own process
    that discards PUT bodies and relays API calls to a tc-local (another process), rewriting the
    presigned URLs to itself, so the limit is the machine's HTTP-over-loopback rate, not a disk.
    The peak memory growth of this process during the upload is printed too (1 GiB by default).
(b) gzip upload of a 100 MB log-like text file, end to end (createArtifact, compression, PUT),
    vs the chosen library (ISA-L) compressing the same bytes, already in memory, on every core
    with the worker's block scheme (no I/O, no HTTP). Targets: >= 45 MB/s and >= 80 %. Level 1
    is the worker's default (ISA-L levels are 0-3). One core of zlib at level 6 (upstream's
    setting) is printed for reference.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import secrets
import sys
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import aiohttp
import slugid
from aiohttp import web
from yarl import URL

from generic_worker.artifacts import ArtifactUploader, FileArtifact
from generic_worker.artifacts.compression import DEFAULT_LEVEL, gzip_stream
from generic_worker.config import Config
from generic_worker.engine.tasklog import TaskLog
from generic_worker.tc import Credentials, ServiceFactory
from generic_worker.timefmt import now, to_tc
from tclocal.server import read_client_options

MiB = 1024 * 1024
ROUNDS = 2


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def write_repeated(path: Path, block: bytes, total: int) -> None:
    with path.open("wb") as out:
        written = 0
        while written < total:
            piece = block[: total - written]
            out.write(piece)
            written += len(piece)


def log_corpus(size: int) -> bytes:
    """Log-like text: varied enough that deflate works as on real logs (ratio ~0.2)."""
    rng = random.Random(7)
    words = [secrets.token_hex(rng.randint(2, 6)) for _ in range(2000)]
    lines = []
    total = 0
    while total < size:
        line = (
            f"[taskcluster 2030-01-0{rng.randint(1, 9)}T1{rng.randint(0, 9)}:{rng.randint(10, 59)}:"
            f"{rng.randint(10, 59)}.{rng.randint(100, 999)}Z] {rng.choice(words)}/{rng.choice(words)}.c: "
            f"compiled {rng.choice(words)} in {rng.randint(1, 99999)} ms ({rng.random():.4f})\n"
        )
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


async def serve_sink(upstream: str) -> None:
    """Discard blob PUT bodies; relay everything else to `upstream` with its URLs pointed here."""
    session = aiohttp.ClientSession(auto_decompress=False)
    own = ""

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.method == "PUT" and request.raw_path.startswith("/blobs/"):
            async for _ in request.content.iter_any():
                pass
            return web.Response(status=200)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        headers["Host"] = request.host  # Hawk signatures cover the host the client saw
        body = await request.read()
        url = URL(upstream + request.raw_path, encoded=True)
        async with session.request(
            request.method, url, headers=headers, data=body or None, allow_redirects=False
        ) as reply:
            payload = (await reply.read()).replace(upstream.encode(), own.encode())
            out = {k: v for k, v in reply.headers.items() if k.lower() not in HOP_HEADERS}
            return web.Response(status=reply.status, body=payload, headers=out)

    app = web.Application(client_max_size=1 << 40)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, auto_decompress=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    own = f"http://127.0.0.1:{port}"
    print(own, flush=True)
    await asyncio.Event().wait()


class Bench:
    """A tc-local in a child process, one claimed run, and the measurements."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.processes: list[asyncio.subprocess.Process] = []
        self.services: ServiceFactory | None = None
        self.task_id = slugid.nice()
        self.credentials: Credentials = {}
        self.log: TaskLog | None = None
        self.counter = 0

    async def start(self) -> None:
        data = self.work / "tclocal"
        self.processes.append(await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tclocal", "--data-dir", str(data), "serve", "--port", "0",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        ))  # fmt: skip
        deadline = time.monotonic() + 30
        options = None
        while options is None:
            if time.monotonic() > deadline:
                raise RuntimeError("tc-local did not start")
            await asyncio.sleep(0.1)
            options = read_client_options(data)
        sink = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.artifact_upload", "--sink", options["rootUrl"],
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self.processes.append(sink)
        assert sink.stdout is not None
        sink_url = (await asyncio.wait_for(sink.stdout.readline(), 30)).decode().strip()
        creds = options["credentials"]
        config = Config(root_url=sink_url, client_id=creds["clientId"], access_token=creds["accessToken"])
        self.services = ServiceFactory(config)
        queue = self.services.queue()
        worker_type = f"bench-{secrets.token_hex(4)}"
        task = {
            "provisionerId": "tc-local", "workerType": worker_type, "schedulerId": "bench",
            "taskGroupId": self.task_id, "created": to_tc(now()), "deadline": to_tc(now() + timedelta(hours=1)),
            "expires": to_tc(now() + timedelta(days=1)), "payload": {},
            "metadata": {"name": "bench", "description": "b", "owner": "b@example.com", "source": "https://x"},
        }  # fmt: skip
        await queue.createTask(self.task_id, task)
        claim = await queue.claimWork(
            f"tc-local/{worker_type}", {"tasks": 1, "workerGroup": "g", "workerId": "w"}
        )
        self.credentials = claim["tasks"][0]["credentials"]
        self.log = TaskLog(self.work / "live_backing.log")

    async def stop(self) -> None:
        if self.log is not None:
            self.log.close()
        if self.services is not None:
            await self.services.close()
        for process in reversed(self.processes):
            process.terminate()
            await process.wait()

    def uploader(self, gzip_level: int = DEFAULT_LEVEL) -> ArtifactUploader:
        assert self.services is not None and self.log is not None
        return ArtifactUploader(
            services=self.services,
            task_id=self.task_id,
            run_id=0,
            credentials=lambda: self.credentials,
            log=self.log,
            use_object_storage=False,
            gzip_level=gzip_level,
            temp_dir=self.work,
        )

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"public/bench/{prefix}-{self.counter}"

    async def upload(self, path: Path, encoding: str, gzip_level: int = DEFAULT_LEVEL) -> float:
        """Seconds for one upload through ArtifactUploader (createArtifact to finished PUT)."""
        expires = now() + timedelta(hours=12)
        artifact = FileArtifact(self.name("up"), path, expires, "application/octet-stream", encoding)
        start = time.perf_counter()
        error = await self.uploader(gzip_level).upload(artifact)
        elapsed = time.perf_counter() - start
        if error is not None:
            raise RuntimeError(error.message)
        return elapsed

    async def raw_put(self, block: bytes, size: int) -> float:
        """Seconds to PUT `size` bytes from memory to a presigned URL of the same receiver."""
        assert self.services is not None
        queue = self.services.queue(self.credentials)
        body = {
            "storageType": "s3",
            "contentType": "application/octet-stream",
            "expires": to_tc(now() + timedelta(hours=12)),
            "contentLength": size,
        }
        response = await queue.createArtifact(self.task_id, "0", self.name("raw"), body)
        view = memoryview(block)

        async def chunks() -> AsyncIterator[bytes | memoryview]:
            sent = 0
            while sent < size:
                piece = view[: min(MiB, size - sent)]
                sent += len(piece)
                yield piece

        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        start = time.perf_counter()
        async with self.services.session.put(response["putUrl"], data=chunks(), headers=headers) as reply:
            await reply.read()
            if reply.status != 200:
                raise RuntimeError(f"raw PUT: HTTP {reply.status}")
        return time.perf_counter() - start


async def best(action: Callable[[], Awaitable[float]]) -> float:
    return min([await action() for _ in range(ROUNDS)])


def zlib_seconds(path: Path, level: int) -> float:
    """One core compressing the file's bytes (already in memory) with zlib at `level`."""
    data = memoryview(path.read_bytes())
    start = time.perf_counter()
    compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for offset in range(0, len(data), MiB):
        compressor.compress(data[offset : offset + MiB])
    compressor.flush()
    return time.perf_counter() - start


def library_seconds(path: Path, level: int) -> float:
    """Every core compressing the file's bytes (already in memory) the worker's way, at `level`."""
    data = path.read_bytes()
    start = time.perf_counter()
    gzip_stream(lambda offset, length: data[offset : offset + length], len(data), lambda _: None, level)
    return time.perf_counter() - start


def row(label: str, size: int, ours: float, limit: float, target: float) -> None:
    ratio = limit / ours
    verdict = "ok" if ratio >= target else "BELOW TARGET"
    print(
        f"{label:<34} {size / 1e6 / ours:8.0f} MB/s  limit {size / 1e6 / limit:8.0f} MB/s  "
        f"ratio {ratio:6.1%}  (target {target:.0%}: {verdict})"
    )


async def run(args: argparse.Namespace, work: Path) -> None:
    bench = Bench(work)
    await bench.start()
    try:
        size = args.size_mib * MiB
        block = os.urandom(16 * MiB)
        big = work / "incompressible.bin"
        await asyncio.to_thread(write_repeated, big, block, size)
        limit = await best(lambda: bench.raw_put(block, size))
        _reset_peak()
        rss_before = _status_bytes("VmRSS")
        ours = await best(lambda: bench.upload(big, "identity"))
        growth = _status_bytes("VmHWM") - rss_before
        print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, best of {ROUNDS} rounds")
        row(f"(a) identity {args.size_mib} MiB vs loopback PUT", size, ours, limit, 0.70)
        print(f"    peak memory growth during the upload: {growth / MiB:.1f} MiB")
        big.unlink()

        gz_size = args.gzip_mb * 1000 * 1000
        text = work / "log-like.txt"
        await asyncio.to_thread(write_repeated, text, log_corpus(16 * MiB), gz_size)
        for level in args.levels:
            limit = min([await asyncio.to_thread(library_seconds, text, level) for _ in range(ROUNDS)])
            ours = await best(functools.partial(bench.upload, text, "gzip", level))
            row(f"(b) gzip level {level} {args.gzip_mb} MB vs all-core isal", gz_size, ours, limit, 0.80)
            verdict = "ok" if gz_size / 1e6 / ours >= 45 else "BELOW TARGET"
            print(f"    end to end {gz_size / 1e6 / ours:.0f} MB/s (target >= 45 MB/s: {verdict})")
        reference = await asyncio.to_thread(zlib_seconds, text, 6)
        print(
            f"    reference: one core of zlib level 6 (upstream's gzip) {gz_size / 1e6 / reference:.0f} MB/s"
        )
    finally:
        await bench.stop()


def main() -> None:
    """Run both measurements and print figures, limits and ratios."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the identity upload")
    parser.add_argument("--gzip-mb", type=int, default=100, help="size of the gzip upload (MB)")
    parser.add_argument(
        "--levels",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[DEFAULT_LEVEL],
        help="ISA-L levels",
    )
    parser.add_argument("--dir", type=Path, default=None, help="where to put the test files")
    parser.add_argument("--sink", help=argparse.SUPPRESS)  # internal: run the discarding receiver
    args = parser.parse_args()
    if args.sink:
        asyncio.run(serve_sink(args.sink))
        return
    with tempfile.TemporaryDirectory(prefix="bench-artifacts-", dir=args.dir) as work:
        asyncio.run(run(args, Path(work)))


if __name__ == "__main__":
    main()
