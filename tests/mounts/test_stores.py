"""The cache and download indexes on real directories: loading after crashes, purges, pools and eviction."""

from __future__ import annotations

import functools
import json
import os
from datetime import timedelta
from pathlib import Path

import slugid

from generic_worker.mounts.caches import STATE_FILE as DIR_STATE
from generic_worker.mounts.caches import DirectoryCaches
from generic_worker.mounts.diskspace import MIB, free_bytes
from generic_worker.mounts.downloads import STATE_FILE as FILE_STATE
from generic_worker.mounts.downloads import DownloadCache
from generic_worker.mounts.eviction import Evictable, make_room
from generic_worker.mounts.statefile import read_json_object, write_json_atomically
from generic_worker.timefmt import now, to_tc


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)

    def warn(self, message: str) -> None:
        self.lines.append(message)


def entry(location: Path, key: str, mounted: str | None = None, last_used: float = 1.0) -> dict[str, object]:
    return {
        "key": key,
        "location": str(location),
        "created": to_tc(now()),
        "lastUsed": last_used,
        "hits": 1,
        "mountedIn": mounted,
    }


async def test_loading_drops_mounted_and_missing_caches_and_orphans(tmp_path: Path):
    caches_dir = tmp_path / "caches"
    good, mounted, orphan = (caches_dir / slugid.nice() for _ in range(3))
    for d in (good, mounted, orphan):
        d.mkdir(parents=True)
    (caches_dir / "not-ours").mkdir()
    missing = caches_dir / slugid.nice()
    write_json_atomically(
        tmp_path / DIR_STATE,
        {
            good.name: entry(good, "good"),
            mounted.name: entry(mounted, "mounted", mounted="/tasks/task_1"),
            missing.name: entry(missing, "missing"),
            "broken": {"key": "x"},
        },
    )
    caches = DirectoryCaches(caches_dir, tmp_path)
    await caches.load()
    assert [e.key for e in caches.entries.values()] == ["good"]
    assert sorted(p.name for p in caches_dir.iterdir()) == sorted([good.name, "not-ours"])
    assert list(read_json_object(tmp_path / DIR_STATE)) == [good.name]


async def test_a_corrupt_state_file_means_no_caches(tmp_path: Path):
    (tmp_path / DIR_STATE).write_text("{ torn")
    (tmp_path / FILE_STATE).write_text("[]")
    caches = DirectoryCaches(tmp_path / "caches", tmp_path)
    downloads = DownloadCache(tmp_path / "downloads", tmp_path)
    await caches.load()
    await downloads.load()
    assert caches.entries == {} and downloads.entries == {}
    assert json.loads((tmp_path / DIR_STATE).read_text()) == {}


async def test_downloads_with_a_wrong_size_or_no_file_are_dropped(tmp_path: Path):
    d = tmp_path / "downloads"
    d.mkdir()
    ok, short, orphan = (d / slugid.nice() for _ in range(3))
    ok.write_bytes(b"12345")
    short.write_bytes(b"12")
    orphan.write_bytes(b"left by a killed download")
    record = {"sha256": "0" * 64, "created": to_tc(now()), "lastUsed": 1.0, "hits": 1}
    write_json_atomically(
        tmp_path / FILE_STATE,
        {
            "ok": {"key": "ok", "location": str(ok), "size": 5, **record},
            "short": {"key": "short", "location": str(short), "size": 5, **record},
            "gone": {"key": "gone", "location": str(d / slugid.nice()), "size": 5, **record},
        },
    )
    downloads = DownloadCache(d, tmp_path)
    await downloads.load()
    assert list(downloads.entries) == ["ok"]
    assert os.listdir(d) == [ok.name]  # the file of a dropped entry goes with the orphans


async def test_purges_and_pools(tmp_path: Path):
    log = Lines()
    caches = DirectoryCaches(tmp_path / "caches", tmp_path, pool_size=1)
    await caches.load()
    old = caches.create("c")
    Path(old.location).mkdir()
    lent = caches.create("c")
    Path(lent.location).mkdir()
    await caches.lend(lent, tmp_path / "task_1")
    assert caches.acquire("c") is old
    # A request made long after both were created purges the free one now, the lent one later.
    await caches.purge("c", now() + timedelta(hours=1), log)
    assert not Path(old.location).exists() and lent.purge_pending
    # A request from before a cache was created (beyond the 5 minute slack) leaves it alone.
    fresh = caches.create("d")
    Path(fresh.location).mkdir()
    await caches.purge("d", now() - timedelta(minutes=10), log)
    assert Path(fresh.location).exists()
    assert log.lines == [
        "[mounts] Removing cache c from cache table",
        f"[mounts] Deleting cache c file(s) at {old.location}",
    ]


async def test_pool_excess_is_trimmed_on_return(tmp_path: Path):
    caches = DirectoryCaches(tmp_path / "caches", tmp_path, pool_size=1)
    await caches.load()
    a, b = caches.create("p"), caches.create("p")
    for e in (a, b):
        Path(e.location).mkdir()
        await caches.lend(e, tmp_path)
    await caches.give_back(a, Lines())
    await caches.give_back(b, Lines())
    assert list(caches.entries.values()) == [b]  # the least recently returned one went


async def test_make_room_evicts_in_lru_order_and_skips_nothing_it_needs(tmp_path: Path):
    evicted: list[str] = []
    blobs = {}
    for name in ("newest", "oldest", "middle"):
        blobs[name] = tmp_path / name
        with open(blobs[name], "wb") as f:
            os.posix_fallocate(f.fileno(), 0, 64 * MIB)
    ages = {"oldest": 1.0, "middle": 2.0, "newest": 3.0}

    def candidates() -> list[Evictable]:
        async def evict(name: str) -> None:
            evicted.append(name)
            blobs[name].unlink()

        return [Evictable(ages[n], n, functools.partial(evict, n)) for n in ages if blobs[n].exists()]

    required = free_bytes(tmp_path) // MIB + 96  # needs two of the three back (64 MiB margins)
    outcome = await make_room(tmp_path, required, candidates, lambda: 0, Lines())
    assert outcome.enough and evicted == ["oldest", "middle"]
    outcome = await make_room(tmp_path, free_bytes(tmp_path) // MIB + 10_000, candidates, lambda: 1, Lines())
    assert not outcome.enough and evicted == ["oldest", "middle", "newest"]
    assert "1 cache(s)/download(s) are in use by running tasks" in outcome.shortfall_message()


def test_state_files_are_replaced_whole(tmp_path: Path):
    path = tmp_path / "state.json"
    write_json_atomically(path, {"a": 1})
    write_json_atomically(path, {"b": 2})
    assert read_json_object(path) == {"b": 2}
    assert os.listdir(tmp_path) == ["state.json"]  # no temporary file left behind
