"""Resolving payload artifact entries against a real task directory on disk."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from generic_worker.artifacts import (
    ErrorArtifact,
    FileArtifact,
    resolve_payload_artifacts,
)
from generic_worker.artifacts.content import SKIP_COMPRESSION

EXPIRES = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
NOBODY = 65534


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """Run the block without root's power to read everything (effective uid nobody), when root."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def task_dir() -> Iterator[Path]:
    """The upstream test tree: SampleArtifacts/{%%%/v/X, _/X.txt, b/c/d.jpg}.

    Under a world-traversable temporary directory, so tests can also resolve as nobody.
    """
    top = Path(tempfile.mkdtemp(prefix="gw-artifacts-"))
    top.chmod(0o755)
    root = top / "task"
    yield from _populated(root)
    for path in top.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(top)


def _populated(root: Path) -> Iterator[Path]:
    (root / "SampleArtifacts" / "%%%" / "v").mkdir(parents=True)
    (root / "SampleArtifacts" / "%%%" / "v" / "X").write_bytes(b"")
    (root / "SampleArtifacts" / "_").mkdir()
    (root / "SampleArtifacts" / "_" / "X.txt").write_bytes(b"test artifact\n")
    (root / "SampleArtifacts" / "b" / "c").mkdir(parents=True)
    (root / "SampleArtifacts" / "b" / "c" / "d.jpg").write_bytes(b"Just a test jpg.\n")
    yield root


def resolve(task_dir: Path, *entries: Mapping[str, object]) -> list[Any]:
    return resolve_payload_artifacts(list(entries), task_dir, EXPIRES)


def only(artifacts: list[Any]) -> Any:
    assert len(artifacts) == 1, artifacts
    return artifacts[0]


def test_file_with_name(task_dir: Path) -> None:
    art = only(
        resolve(
            task_dir, {"type": "file", "path": "SampleArtifacts/_/X.txt", "name": "public/build/firefox.exe"}
        )
    )
    assert art == FileArtifact(
        name="public/build/firefox.exe",
        path=(task_dir / "SampleArtifacts/_/X.txt").resolve(),
        expires=EXPIRES,
        content_type="text/plain; charset=utf-8",
        content_encoding="gzip",
    )


def test_name_defaults_to_path_as_given_and_expiry_to_task_expiry(task_dir: Path) -> None:
    art = only(resolve(task_dir, {"type": "file", "path": "SampleArtifacts/_/X.txt"}))
    assert isinstance(art, FileArtifact)
    assert art.name == "SampleArtifacts/_/X.txt"
    assert art.expires == EXPIRES


def test_explicit_expiry_is_parsed(task_dir: Path) -> None:
    art = only(
        resolve(
            task_dir,
            {"type": "file", "path": "SampleArtifacts/_/X.txt", "expires": "2029-05-06T07:08:09.123Z"},
        )
    )
    assert art.expires == datetime(2029, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("filename", "content_type", "encoding"),
    [
        ("a.txt", "text/plain; charset=utf-8", "gzip"),
        ("a.jpg", "image/jpeg", "identity"),
        ("a.log", "text/plain", "gzip"),
        ("a.jsonl", "application/jsonl", "gzip"),
        ("a.html", "text/html; charset=utf-8", "gzip"),
        ("a.json", "application/json", "gzip"),
        ("a.unknownext", "application/octet-stream", "gzip"),
        ("noextension", "application/octet-stream", "gzip"),
        ("a.tar.gz", "application/gzip", "identity"),
        ("a.wasm", "application/wasm", "identity"),
        ("A.JPG", "image/jpeg", "identity"),  # decision: extension matching is case-insensitive
        ("a.LOG", "text/plain", "gzip"),
    ],
)
def test_guessed_content_type_and_encoding(
    task_dir: Path, filename: str, content_type: str, encoding: str
) -> None:
    (task_dir / filename).write_bytes(b"x")
    art = only(resolve(task_dir, {"type": "file", "path": filename}))
    assert isinstance(art, FileArtifact)
    assert (art.content_type, art.content_encoding) == (content_type, encoding)


def test_skip_list_extensions_are_identity(task_dir: Path) -> None:
    names = [f"f{ext}" for ext in sorted(SKIP_COMPRESSION)] + ["f.tar.ZST", "f.txt.gz", "f.gz.txt"]
    for name in names:
        (task_dir / name).write_bytes(b"x")
    arts = resolve(task_dir, *({"type": "file", "path": name} for name in names))
    assert [a.content_encoding for a in arts] == ["identity"] * (len(names) - 1) + ["gzip"]


def test_explicit_content_type_wins(task_dir: Path) -> None:
    entry = {"type": "file", "path": "SampleArtifacts/_/X.txt", "contentType": "application/octet-stream"}
    art = only(resolve(task_dir, entry))
    assert art.content_type == "application/octet-stream"


@pytest.mark.parametrize(
    ("path", "given", "expected"),
    [
        ("SampleArtifacts/_/X.txt", None, "gzip"),
        ("SampleArtifacts/_/X.txt", "identity", "identity"),
        ("SampleArtifacts/_/X.txt", "gzip", "gzip"),
        ("SampleArtifacts/b/c/d.jpg", None, "identity"),
        ("SampleArtifacts/b/c/d.jpg", "identity", "identity"),
        ("SampleArtifacts/b/c/d.jpg", "gzip", "gzip"),
    ],
)
def test_content_encoding(task_dir: Path, path: str, given: str | None, expected: str) -> None:
    entry: dict[str, object] = {"type": "file", "path": path}
    if given:
        entry["contentEncoding"] = given
    art = only(resolve(task_dir, entry))
    assert art.content_encoding == expected


def test_directory_with_name_in_lexical_order(task_dir: Path) -> None:
    arts = resolve(task_dir, {"type": "directory", "path": "SampleArtifacts", "name": "public/b/c"})
    assert [(a.name, a.content_type, a.content_encoding) for a in arts] == [
        ("public/b/c/%%%/v/X", "application/octet-stream", "gzip"),
        ("public/b/c/_/X.txt", "text/plain; charset=utf-8", "gzip"),
        ("public/b/c/b/c/d.jpg", "image/jpeg", "identity"),
    ]
    assert all(a.expires == EXPIRES for a in arts)
    assert arts[1].path == (task_dir / "SampleArtifacts/_/X.txt").resolve()


def test_directory_without_name(task_dir: Path) -> None:
    arts = resolve(task_dir, {"type": "directory", "path": "SampleArtifacts"})
    assert [a.name for a in arts] == [
        "SampleArtifacts/%%%/v/X",
        "SampleArtifacts/_/X.txt",
        "SampleArtifacts/b/c/d.jpg",
    ]


def test_directory_content_type_and_encoding_apply_to_all(task_dir: Path) -> None:
    arts = resolve(
        task_dir,
        {"type": "directory", "path": "SampleArtifacts", "contentType": "text/plain; charset=utf-8"},
        {"type": "directory", "path": "SampleArtifacts", "name": "again", "contentEncoding": "identity"},
    )
    assert [a.content_type for a in arts[:3]] == ["text/plain; charset=utf-8"] * 3
    assert [a.content_encoding for a in arts[:3]] == ["gzip", "gzip", "identity"]
    assert [a.content_encoding for a in arts[3:]] == ["identity"] * 3


def test_walk_is_depth_first_in_byte_order(tmp_path: Path) -> None:
    for rel in ("d/B", "d/a/x", "d/a.txt", "d/a/y/z", "d/_", "d/é"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    (tmp_path / "d" / "empty").mkdir()
    arts = resolve(tmp_path, {"type": "directory", "path": "d", "name": "out/"})
    assert [a.name for a in arts] == ["out/B", "out/_", "out/a/x", "out/a/y/z", "out/a.txt", "out/é"]


def test_missing_file(task_dir: Path) -> None:
    art = only(resolve(task_dir, {"type": "file", "path": "Nonexistent/art i fact.txt", "optional": True}))
    assert art == ErrorArtifact(
        name="Nonexistent/art i fact.txt",
        path="Nonexistent/art i fact.txt",
        message=f"Could not read file '{task_dir}/Nonexistent/art i fact.txt'",
        reason="file-missing-on-worker",
        expires=EXPIRES,
        optional=True,
    )


def test_missing_directory(task_dir: Path) -> None:
    art = only(resolve(task_dir, {"type": "directory", "path": "Nonexistent", "name": "public/x"}))
    assert isinstance(art, ErrorArtifact)
    assert (art.name, art.reason, art.optional) == ("public/x", "file-missing-on-worker", False)
    assert art.message == f"Could not read directory '{task_dir}/Nonexistent'"


def test_file_artifact_is_directory(task_dir: Path) -> None:
    art = only(resolve(task_dir, {"type": "file", "path": "SampleArtifacts/b/c"}))
    assert isinstance(art, ErrorArtifact)
    assert art.reason == "invalid-resource-on-worker"
    assert (
        art.message
        == f"File artifact '{task_dir}/SampleArtifacts/b/c' exists as a directory, not a file, on the worker"
    )


def test_directory_artifact_is_file(task_dir: Path) -> None:
    art = only(resolve(task_dir, {"type": "directory", "path": "SampleArtifacts/b/c/d.jpg"}))
    assert isinstance(art, ErrorArtifact)
    assert art.reason == "invalid-resource-on-worker"
    expected = f"Directory artifact '{task_dir}/SampleArtifacts/b/c/d.jpg' exists as a file, not a directory, on the worker"
    assert art.message == expected


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_dotdot_escape_is_refused(task_dir: Path, kind: str) -> None:
    outside = task_dir.parent / "secret"
    outside.mkdir()
    (outside / "key").write_text("secret")
    path = "../secret/key" if kind == "file" else "SampleArtifacts/../../secret"
    art = only(resolve(task_dir, {"type": kind, "path": path}))
    assert isinstance(art, ErrorArtifact)
    assert art.reason == "invalid-resource-on-worker"
    assert "outside the task directory" in art.message


def test_dotdot_that_stays_inside_is_allowed(task_dir: Path) -> None:
    art = only(resolve(task_dir, {"type": "file", "path": "SampleArtifacts/b/../_/X.txt"}))
    assert isinstance(art, FileArtifact)
    assert art.name == "SampleArtifacts/b/../_/X.txt"


def test_symlink_to_outside_file_is_refused_before_any_open(task_dir: Path) -> None:
    secret = task_dir.parent / "secret.txt"
    secret.write_text("secret")
    secret.chmod(0)  # were it opened, the reason would be file-not-readable-on-worker
    (task_dir / "link.txt").symlink_to(secret)
    with unprivileged():
        art = only(resolve(task_dir, {"type": "file", "path": "link.txt"}))
    assert isinstance(art, ErrorArtifact)
    assert art.reason == "invalid-resource-on-worker"
    assert f"resolves to '{secret.resolve()}', outside the task directory" in art.message


def test_symlinked_directory_pointing_outside_is_refused(task_dir: Path) -> None:
    (task_dir.parent / "elsewhere").mkdir()
    (task_dir.parent / "elsewhere" / "f").write_text("x")
    (task_dir / "out").symlink_to(task_dir.parent / "elsewhere")
    art = only(resolve(task_dir, {"type": "directory", "path": "out"}))
    assert isinstance(art, ErrorArtifact)
    assert art.reason == "invalid-resource-on-worker"


def test_symlinks_inside_a_directory_artifact(task_dir: Path) -> None:
    secret = task_dir.parent / "secret.txt"
    secret.write_text("secret")
    links = task_dir / "SampleArtifacts" / "links"
    links.mkdir()
    (links / "escape.txt").symlink_to(secret)
    (links / "inside.log").symlink_to(task_dir / "SampleArtifacts" / "_" / "X.txt")
    (links / "subdir").symlink_to(task_dir / "SampleArtifacts" / "b")
    (links / "dangling").symlink_to(task_dir / "nothing-here")
    arts = {
        a.name: a
        for a in resolve(task_dir, {"type": "directory", "path": "SampleArtifacts/links", "name": "l"})
    }
    assert sorted(arts) == ["l/dangling", "l/escape.txt", "l/inside.log", "l/subdir"]
    escape = arts["l/escape.txt"]
    assert isinstance(escape, ErrorArtifact)
    assert (escape.reason, escape.path) == ("invalid-resource-on-worker", "SampleArtifacts/links/escape.txt")
    inside = arts["l/inside.log"]
    assert isinstance(inside, FileArtifact)
    assert inside.path == (task_dir / "SampleArtifacts" / "_" / "X.txt").resolve()
    assert inside.content_type == "text/plain"  # from the link's own name, as upstream
    subdir = arts["l/subdir"]
    assert isinstance(subdir, ErrorArtifact)
    assert "exists as a directory" in subdir.message
    dangling = arts["l/dangling"]
    assert isinstance(dangling, ErrorArtifact)
    assert dangling.reason == "file-missing-on-worker"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_hard_link_to_a_file_of_another_user_is_refused(task_dir: Path) -> None:
    foreign = task_dir.parent / "foreign.txt"
    foreign.write_text("secret")
    os.chown(foreign, NOBODY, NOBODY)
    os.link(foreign, task_dir / "linked.txt")
    own = task_dir / "own.txt"
    own.write_text("mine")
    os.link(own, task_dir / "own-link.txt")
    arts = resolve(task_dir, {"type": "file", "path": "linked.txt"}, {"type": "file", "path": "own-link.txt"})
    assert isinstance(arts[0], ErrorArtifact)
    assert arts[0].reason == "invalid-resource-on-worker"
    assert "hard link to a file the task does not own" in arts[0].message
    assert isinstance(arts[1], FileArtifact)


def test_absolute_paths(task_dir: Path, tmp_path: Path) -> None:
    inside = str(task_dir / "SampleArtifacts" / "_" / "X.txt")
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    arts = resolve(task_dir, {"type": "file", "path": inside}, {"type": "file", "path": str(outside)})
    assert isinstance(arts[0], FileArtifact)
    assert arts[0].name == inside
    assert isinstance(arts[1], ErrorArtifact)
    assert arts[1].reason == "invalid-resource-on-worker"


def test_absolute_directory_inside(task_dir: Path) -> None:
    arts = resolve(
        task_dir,
        {"type": "directory", "path": str(task_dir / "SampleArtifacts" / "b"), "name": "public/abs-dir"},
    )
    assert [(a.name, a.content_type) for a in arts] == [("public/abs-dir/c/d.jpg", "image/jpeg")]


def test_unreadable_file(task_dir: Path) -> None:
    target = task_dir / "private.txt"
    target.write_text("x")
    target.chmod(0)
    with unprivileged():
        art = only(resolve(task_dir, {"type": "file", "path": "private.txt"}))
    assert isinstance(art, ErrorArtifact)
    assert art.reason == "file-not-readable-on-worker"
    assert art.message.startswith(f"Could not read file '{target}'")


def test_unreadable_subdirectory(task_dir: Path) -> None:
    locked = task_dir / "SampleArtifacts" / "locked"
    locked.mkdir()
    (locked / "f").write_text("x")
    locked.chmod(0)
    with unprivileged():
        arts = resolve(task_dir, {"type": "directory", "path": "SampleArtifacts", "name": "p"})
    errors = [a for a in arts if isinstance(a, ErrorArtifact)]
    assert [(e.name, e.reason, e.path) for e in errors] == [
        ("p/locked", "file-missing-on-worker", "SampleArtifacts/locked")
    ]
    assert len(arts) == 4


def test_fifo_is_not_a_regular_file_and_does_not_hang(task_dir: Path) -> None:
    os.mkfifo(task_dir / "pipe")
    art = only(resolve(task_dir, {"type": "file", "path": "pipe"}))
    assert isinstance(art, ErrorArtifact)
    assert art.reason == "invalid-resource-on-worker"
    assert "not a regular file" in art.message


def test_entries_keep_payload_order(task_dir: Path) -> None:
    arts = resolve(
        task_dir,
        {"type": "file", "path": "SampleArtifacts/b/c/d.jpg"},
        {"type": "file", "path": "missing"},
        {"type": "file", "path": "SampleArtifacts/_/X.txt"},
    )
    assert [a.name for a in arts] == ["SampleArtifacts/b/c/d.jpg", "missing", "SampleArtifacts/_/X.txt"]
