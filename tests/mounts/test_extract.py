"""Safe extraction on real archives in a real directory (no worker): what lands where, and what is refused."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from generic_worker.mounts.compression import ARCHIVE_FORMATS
from generic_worker.mounts.diskspace import MIB, Budget
from generic_worker.mounts.errors import MountError
from generic_worker.mounts.extract import extract_archive, symlink_stays_inside

from .archives import Entry, archive, tar_bomb


def extract(tmp_path: Path, data: bytes, fmt: str, budget: Budget | None = None) -> Path:
    source = tmp_path / f"archive.{fmt}"
    source.write_bytes(data)
    target = tmp_path / "target"
    target.mkdir(exist_ok=True)
    extract_archive(source, fmt, target, budget or Budget(1 << 40, None, 0, tmp_path))
    return target


@pytest.mark.parametrize("fmt", ARCHIVE_FORMATS)
def test_every_format_extracts_files_dirs_modes_and_links(tmp_path: Path, fmt: str):
    entries = [
        Entry("./bin/", "dir"),
        Entry("./bin/tool", data=b"#!/bin/sh\n", mode=0o755),
        Entry("lib/data.txt", data=b"data", mode=0o640),
        Entry("lib/alias", "symlink", link="data.txt"),
        Entry("up", "symlink", link="bin/tool"),
    ]
    if fmt != "zip":
        entries.append(Entry("lib/hard", "hardlink", link="lib/data.txt"))
    target = extract(tmp_path, archive(entries, fmt), fmt)
    assert (target / "bin/tool").read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE((target / "bin/tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((target / "lib/data.txt").stat().st_mode) == 0o640
    assert os.readlink(target / "lib/alias") == "data.txt"
    assert (target / "up").read_bytes() == b"#!/bin/sh\n"
    if fmt != "zip":
        assert (target / "lib/hard").stat().st_ino == (target / "lib/data.txt").stat().st_ino


def test_setuid_bits_are_dropped_and_a_later_entry_replaces_an_earlier_one(tmp_path: Path):
    entries = [Entry("f", data=b"old", mode=0o4755), Entry("f", data=b"new", mode=0o6755)]
    target = extract(tmp_path, archive(entries, "tar"), "tar")
    assert (target / "f").read_bytes() == b"new"
    assert stat.S_IMODE((target / "f").stat().st_mode) == 0o755


def test_a_file_replacing_a_symlink_does_not_write_through_it(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.write_bytes(b"untouched")
    entries = [Entry("l", "symlink", link="x"), Entry("l", data=b"a file now")]
    target = extract(tmp_path, archive(entries, "tar"), "tar")
    assert (target / "l").read_bytes() == b"a file now" and not (target / "l").is_symlink()
    assert outside.read_bytes() == b"untouched"


def test_devices_and_fifos_are_skipped(tmp_path: Path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        fifo = tarfile.TarInfo("fifo")
        fifo.type = tarfile.FIFOTYPE
        tar.addfile(fifo)
        device = tarfile.TarInfo("null")
        device.type = tarfile.CHRTYPE
        tar.addfile(device)
    source = tmp_path / "a.tar"
    source.write_bytes(buffer.getvalue())
    (tmp_path / "t").mkdir()
    result = extract_archive(source, "tar", tmp_path / "t", Budget(1 << 40, None, 0, tmp_path))
    assert result.skipped == ["fifo (device or FIFO)", "null (device or FIFO)"]
    assert os.listdir(tmp_path / "t") == []


@pytest.mark.parametrize(
    ("depth", "link", "inside"),
    [
        (0, "a/b", True),
        (0, "../x", False),
        (1, "../x", True),
        (1, "../../x", False),
        (2, "./../.././y", True),
        (0, "x/..", False),  # `x` may be (or become) a link: `x -> .` makes it the root's parent
        (3, "a/../b", False),
        (0, ".", True),
    ],
)
def test_symlink_rule(depth: int, link: str, inside: bool):
    assert symlink_stays_inside(depth, link) is inside


def test_hard_link_to_a_replaced_file_is_refused(tmp_path: Path):
    entries = [
        Entry("f", data=b"first"),
        Entry("f", "symlink", link="g"),
        Entry("h", "hardlink", link="f"),
    ]
    with pytest.raises(
        MountError, match="h: hard link to 'f', which is not a file extracted from this archive"
    ):
        extract(tmp_path, archive(entries, "tar"), "tar")


@pytest.mark.parametrize(
    ("data", "fmt", "message"),
    [
        (b"not an archive at all", "zip", "cannot unarchive .* as zip"),
        (b"\x00" * 10, "tar.gz", "cannot unarchive .* as tar.gz"),
        (archive([Entry("f", data=b"x" * 5000)], "tar.xz")[:-40], "tar.xz", "cannot unarchive"),
        (archive([Entry("f", data=os.urandom(5000))], "tar.zst")[:300], "tar.zst", "cannot unarchive"),
        (b"", "7z", "archive format '7z' is not supported by this worker"),
    ],
)
def test_corrupt_or_unknown_archives(tmp_path: Path, data: bytes, fmt: str, message: str):
    with pytest.raises(MountError, match=message):
        extract(tmp_path, data, fmt)


def test_budget_stops_a_bomb_and_counts_entries(tmp_path: Path):
    budget = Budget(3 * MIB, None, 0, tmp_path)
    with pytest.raises(MountError, match="stopped after 2097152 bytes"):  # the 2nd header says too much
        extract(tmp_path, tar_bomb(2 * MIB, 2 * MIB), "tar.zst", budget)
    many = archive([Entry(f"f{i}", data=b"") for i in range(20)], "tar")
    with pytest.raises(MountError, match="would exhaust the free inodes"):
        extract(tmp_path, many, "tar", Budget(1 << 40, 10, 0, tmp_path))
