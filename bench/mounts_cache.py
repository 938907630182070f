"""Mounting and unmounting a writable cache of 100 000 files, beside a bare `rename(2)` in the same run.

    python -m bench.mounts_cache [--files 100000] [--rounds 20]

The cache is filled once (100 000 small files in 1 000 directories), then mounted into a task
directory and unmounted again with the real mounts code (`WritableCache.mount` / `unmount`:
index updates saved atomically with fsync, the seed's log lines, the rename each way). Both are
O(1) in the number of files. Target: mount + unmount <= 50 ms. Shown beside it: two bare renames
of the same directory (the floor), and the same round trip with an empty cache, which shows the
cost does not grow with the number of files.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from generic_worker.mounts import DirectoryCaches, DownloadCache, FetchContext, MountContext, new_mount
from generic_worker.mounts.spec import MountSpec

from .mounts_file import QuietLog


def fill(directory: Path, files: int) -> None:
    per_dir = 100
    for d in range(max(1, files // per_dir)):
        sub = directory / f"d{d:04d}"
        sub.mkdir()
        for f in range(min(per_dir, files - d * per_dir)):
            (sub / f"f{f:03d}").write_bytes(b"x")


async def round_trips(root: Path, name: str, files: int, rounds: int) -> list[float]:
    """Times of mount + unmount of cache `name` holding `files` files."""
    caches = DirectoryCaches(root / "caches", root)
    await caches.load()
    downloads = DownloadCache(root / "downloads", root)
    await downloads.load()
    async with aiohttp.ClientSession() as session:
        fetch = FetchContext(session, lambda: None, lambda _s, _c: None)
        spec = MountSpec("writableDirectoryCache", "cache", name, None, None)
        times = []
        for i in range(rounds + 1):
            task_dir = root / f"task_{name}_{i}"
            task_dir.mkdir()
            ctx = MountContext(task_dir, QuietLog(), caches, downloads, fetch, 0)
            mount = new_mount(spec)
            start = time.perf_counter()
            await mount.mount(ctx)
            if i == 0:  # the first round creates the cache: fill it, untimed
                await asyncio.to_thread(fill, task_dir / "cache", files)
            await mount.unmount(ctx, purge=False)
            if i:
                times.append(time.perf_counter() - start)
            task_dir.rmdir()
    return times


def bare_renames(root: Path, rounds: int) -> list[float]:
    src, dst = root / "bare-src", root / "bare-dst"
    src.mkdir()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        os.rename(src, dst)
        os.rename(dst, src)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-caches-", dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        full = asyncio.run(round_trips(root, "full", args.files, args.rounds))
        empty = asyncio.run(round_trips(root, "empty", 0, args.rounds))
        floor = bare_renames(root, args.rounds)
        shutil.rmtree(root / "caches")
    ms = 1000.0
    print(f"writable cache mount + unmount (median / max of {args.rounds} rounds), ms:")
    print(
        f"  {args.files} files: {statistics.median(full) * ms:7.2f} / {max(full) * ms:7.2f} "
        f"(target <= 50 ms: {'met' if statistics.median(full) * ms <= 50 else 'NOT met'})"
    )
    print(f"  empty cache:  {statistics.median(empty) * ms:7.2f} / {max(empty) * ms:7.2f}")
    print(f"  two bare rename(2) calls (the floor): {statistics.median(floor) * ms:7.3f}")


if __name__ == "__main__":
    main()
