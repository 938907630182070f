"""Decompressors (bounded reads, corrupt and truncated input) and mount path checks."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from generic_worker.mounts.compression import COMPRESSIONS, DECOMPRESSION_ERRORS, open_decompressed
from generic_worker.mounts.diskspace import MIB
from generic_worker.mounts.errors import MountError
from generic_worker.mounts.paths import entry_parts, mount_target

from .archives import compress, zeros_zst

DATA = os.urandom(300_000) + bytes(3 * MIB)


def read_all(reader: io.BufferedIOBase, step: int) -> bytes:
    out = bytearray()
    while chunk := reader.read(step):
        assert len(chunk) <= step
        out += chunk
    return bytes(out)


@pytest.mark.parametrize("fmt", COMPRESSIONS)
def test_round_trip_in_bounded_reads(fmt: str):
    assert read_all(open_decompressed(io.BytesIO(compress(DATA, fmt)), fmt), 65536) == DATA


@pytest.mark.parametrize("fmt", COMPRESSIONS)
def test_truncated_input_is_an_error(fmt: str):
    data = compress(DATA, fmt)
    with pytest.raises(DECOMPRESSION_ERRORS):
        read_all(open_decompressed(io.BytesIO(data[: len(data) // 2]), fmt), MIB)


@pytest.mark.parametrize("fmt", COMPRESSIONS)
def test_garbage_is_an_error(fmt: str):
    with pytest.raises(DECOMPRESSION_ERRORS):
        read_all(open_decompressed(io.BytesIO(b"certainly not compressed " * 40), fmt), MIB)


def test_a_bomb_is_read_a_piece_at_a_time():
    reader = open_decompressed(io.BytesIO(zeros_zst(256 * MIB)), "zst")
    assert reader.read(MIB) == bytes(MIB)  # only what was asked for, however much more there is


def test_unknown_compression():
    with pytest.raises(MountError, match="file format 'lz' is not supported by this worker"):
        open_decompressed(io.BytesIO(b""), "lz")


def test_mount_targets(tmp_path: Path):
    task = tmp_path / "task"
    (task / "sub").mkdir(parents=True)
    (task / "inside-link").symlink_to("sub")
    (task / "outside-link").symlink_to(tmp_path)
    assert mount_target(task, "a/b") == task / "a/b"
    assert mount_target(task, "sub/../c") == task / "c"
    assert mount_target(task, str(task / "abs")) == task / "abs"
    assert mount_target(task, "inside-link/x") == task / "sub/x"
    assert mount_target(task, ".") == task
    for bad in ("..", "../x", "/etc/passwd", "sub/../../x", "outside-link/x"):
        with pytest.raises(MountError, match="outside the task directory"):
            mount_target(task, bad)


@pytest.mark.parametrize(
    ("name", "parts"),
    [("a/b/c", ["a", "b", "c"]), ("./a//b/", ["a", "b"]), ("a/../b", ["b"]), (".", [])],
)
def test_entry_parts(name: str, parts: list[str]):
    assert entry_parts(name) == parts


@pytest.mark.parametrize("name", ["/etc/passwd", "..", "a/../../b", "C:/x", "a\\b"])
def test_entry_parts_refused(name: str):
    with pytest.raises(MountError, match="illegal file path"):
        entry_parts(name)
