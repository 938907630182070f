"""Writing certificate files where a task could have left traps, and reading the task's own file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from generic_worker.cot.files import TaskFileError, WorkerDir, read_bounded, sha256_of

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")


def test_files_are_created_afresh_never_through_a_planted_link(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.write_text("precious")
    gw = tmp_path / "generic-worker"
    gw.mkdir()
    (gw / "chain-of-trust.json").symlink_to(outside)
    os.link(outside, gw / "certified.log")
    (gw / "live_backing.log").write_bytes(b"line one\nline two\n")
    with WorkerDir(gw) as directory:
        written = directory.write_new("chain-of-trust.json", b"{}")
        copied = directory.copy_new("live_backing.log", "certified.log", 9)
    assert written == gw / "chain-of-trust.json" and not written.is_symlink()
    assert written.read_bytes() == b"{}"
    assert copied.read_bytes() == b"line one\n"
    assert outside.read_text() == "precious"
    assert (written.stat().st_mode & 0o777) == 0o644


def test_a_symlink_in_place_of_the_directory_is_refused(tmp_path: Path):
    real = tmp_path / "elsewhere"
    real.mkdir()
    link = tmp_path / "generic-worker"
    link.symlink_to(real)
    with pytest.raises(TaskFileError, match="cannot be opened as a directory"):
        WorkerDir(link)
    assert list(real.iterdir()) == []


@ROOT_ONLY
def test_a_directory_the_task_user_made_is_refused(tmp_path: Path):
    gw = tmp_path / "generic-worker"
    gw.mkdir()
    os.chown(gw, 65534, 65534)
    with pytest.raises(TaskFileError, match="not the worker's directory"):
        WorkerDir(gw)


def test_a_log_shorter_than_reported_is_an_error(tmp_path: Path):
    (tmp_path / "log").write_bytes(b"abc")
    with WorkerDir(tmp_path) as directory, pytest.raises(TaskFileError, match="shorter than the 10 bytes"):
        directory.copy_new("log", "copy", 10)


def test_bounded_reads(tmp_path: Path):
    assert read_bounded(tmp_path / "missing.json", 10) is None
    small = tmp_path / "small.json"
    small.write_bytes(b'{"a": 1}')
    assert read_bounded(small, 8) == b'{"a": 1}'
    with pytest.raises(TaskFileError, match="more than the 7 bytes"):
        read_bounded(small, 7)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(TaskFileError, match="not a regular file"):
        read_bounded(fifo, 10)  # returns at once: a FIFO is never read
    with pytest.raises(TaskFileError, match="not a regular file"):
        read_bounded(Path("/dev/zero"), 10)


def test_sha256_of_a_file(tmp_path: Path):
    path = tmp_path / "x"
    path.write_bytes(b"test artifact\n")
    # Upstream's test artifact X.txt and the hash its chain-of-trust test expects.
    assert sha256_of(path) == "8308d593eb56527137532595a60255a3fcfbe4b6b068e29b22d99742bad80f6f"
