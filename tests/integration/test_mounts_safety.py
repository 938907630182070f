"""Hostile archives and decompression bombs: each is a failed task with a clear `[mounts]` line,
and nothing is ever written outside the mount directory (TARGET §10; seed quirk 13).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from generic_worker.mounts.diskspace import MIB, free_bytes

from ..mounts.archives import Entry, archive, tar_bomb, zeros_zst
from ..mounts.content import content_server, payload
from .harness import GW

# The mount directory is <tmp>/tasks/task_N/d, so three `..` reach the test's tmp directory.
OUT = "../../../outside.txt"

HOSTILE = {
    "zip-slip": ("zip", [Entry(OUT, data=b"evil")], "../../../outside.txt: illegal file path"),
    "tar-dotdot": ("tar.gz", [Entry("a/" + OUT, data=b"evil")], "illegal file path"),
    "tar-absolute": ("tar", [Entry("/tmp/gw-absolute-evil", data=b"evil")], "illegal file path"),
    "symlink-absolute": (
        "tar.gz",
        [Entry("esc", "symlink", link="/")],
        "esc: symbolic link to an absolute path '/'",
    ),
    "symlink-escape": (
        "tar.xz",
        [Entry("esc", "symlink", link="../../.."), Entry("esc/outside.txt", data=b"evil")],
        "esc: symbolic link '../../..' points outside the target directory",
    ),
    "zip-symlink-escape": ("zip", [Entry("esc", "symlink", link="../../../outside.txt")], "points outside"),
    "write-through-symlink": (
        "tar.zst",
        [Entry("real", "dir"), Entry("alias", "symlink", link="real"), Entry("alias/file", data=b"x")],
        "alias: not a directory (a file or a symbolic link is in the way); refusing to write through it",
    ),
    "symlink-dotdot-through-link": (
        "tar",
        [Entry("x", "symlink", link="."), Entry("l", "symlink", link="x/..")],
        "l: symbolic link 'x/..' points outside the target directory",
    ),
    "hardlink-escape": (
        "tar.bz2",
        [Entry("h", "hardlink", link=OUT)],
        "h: hard link '../../../outside.txt' points outside",
    ),
    "hardlink-absolute": (
        "tar",
        [Entry("h", "hardlink", link="/etc/passwd")],
        "h: hard link '/etc/passwd' points outside",
    ),
    "hardlink-to-foreign-file": (
        "tar",
        [Entry("h", "hardlink", link="not-in-archive")],
        "h: hard link to 'not-in-archive', which is not a file extracted from this archive",
    ),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
async def test_hostile_archive_is_refused(gw: GW, case: str):
    fmt, entries, message = HOSTILE[case]
    async with content_server() as server:
        url = server.add(f"hostile.{fmt}", archive(entries, fmt))
        task_id = await gw.submit(payload([{"directory": "d", "content": {"url": url}, "format": fmt}]))
        await gw.run()
    log = await gw.log(task_id)
    assert await gw.resolution(task_id) == "failed/failed", log
    assert f"[taskcluster:error] [mounts] refusing to extract {fmt} archive " in log
    assert message in log
    assert not (gw.tmp / "outside.txt").exists()
    assert not Path("/tmp/gw-absolute-evil").exists()


async def test_hard_links_inside_the_archive_work(gw: GW):
    entries = [
        Entry("a/f", data=b"shared\n"),
        Entry("b/g", "hardlink", link="a/f"),
        Entry("l", "symlink", link="a/f"),
    ]
    async with content_server() as server:
        url = server.add("links.tar.bz2", archive(entries, "tar.bz2"))
        mounts = [{"directory": "d", "content": {"url": url}, "format": "tar.bz2"}]
        task_id = await gw.submit(payload(mounts, 'test "$(stat -c %h d/a/f)" = 2 && cat d/b/g d/l'))
        await gw.run()
    assert await gw.resolution(task_id) == "completed/completed"
    assert "shared\nshared\n" in await gw.log(task_id)


def budget_config(gw: GW, mib: int) -> dict[str, int]:
    """`requiredDiskSpaceMegabytes` leaving only `mib` MiB for this task (measured now)."""
    return {"requiredDiskSpaceMegabytes": free_bytes(gw.tmp) // MIB - mib}


async def test_archive_bomb_stops_before_filling_the_disk(gw: GW):
    # Ten 100 MiB files of zeros (about 100 KiB compressed); only 200 MiB may be written.
    bomb = tar_bomb(*[100 * MIB] * 10)
    assert len(bomb) < MIB
    async with content_server() as server:
        url = server.add("bomb.tar.zst", bomb)
        task_id = await gw.submit(payload([{"directory": "d", "content": {"url": url}, "format": "tar.zst"}]))
        await gw.run(**budget_config(gw, 200))
    log = await gw.log(task_id)
    assert await gw.resolution(task_id) == "failed/failed", log
    assert "would leave less than requiredDiskSpaceMegabytes" in log
    assert "(a decompression bomb, or content too large for this worker)" in log
    written = int(log.split("stopped after ", 1)[1].split(" bytes", 1)[0])
    assert 0 < written <= 200 * MIB
    assert not (next(gw.task_dirs()) / "d").exists()  # what was written is freed again


async def test_declared_size_over_budget_fails_before_writing(gw: GW):
    async with content_server() as server:
        url = server.add("big.tar.zst", tar_bomb(2048 * MIB))
        task_id = await gw.submit(payload([{"directory": "d", "content": {"url": url}, "format": "tar.zst"}]))
        await gw.run(**budget_config(gw, 100))
    assert await gw.resolution(task_id) == "failed/failed"
    assert "stopped after 0 bytes" in await gw.log(task_id)
    assert not (next(gw.task_dirs()) / "d").exists()


async def test_file_mount_bomb(gw: GW):
    async with content_server() as server:
        url = server.add("bomb.zst", zeros_zst(512 * MIB))
        task_id = await gw.submit(payload([{"file": "f", "content": {"url": url}, "format": "zst"}]))
        await gw.run(**budget_config(gw, 64))
    log = await gw.log(task_id)
    assert await gw.resolution(task_id) == "failed/failed"
    assert "[mounts] Not able to mount content from url " in log and "would leave less than" in log
    written = int(log.split("stopped after ", 1)[1].split(" bytes", 1)[0])
    assert 0 < written <= 64 * MIB
    assert not (next(gw.task_dirs()) / "f").exists()  # the partial file is freed again
