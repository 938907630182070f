"""Handing mounted files to a task user without following links (the chown fallback), as root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from generic_worker.mounts.ownership import hand_over_file, hand_over_tree

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root"),
]


def test_hand_over_tree_chowns_everything_and_follows_no_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("root's")
    top = tmp_path / "cache"
    (top / "a" / "b").mkdir(parents=True)
    (top / "a" / "b" / "f").write_text("x")
    (top / "link").symlink_to(outside)
    (top / "dirlink").symlink_to(tmp_path)
    assert hand_over_tree(top, 4321, 4322) == 6
    owners = {(p.lstat().st_uid, p.lstat().st_gid) for p in [top, *top.rglob("*")]}
    assert owners == {(4321, 4322)}
    assert outside.stat().st_uid == 0 and tmp_path.stat().st_uid == 0


def test_hand_over_file_gives_a_hard_link_a_private_copy(tmp_path: Path) -> None:
    cached = tmp_path / "cached"
    cached.write_text("content")
    cached.chmod(0o644)
    mounted = tmp_path / "mounted"
    os.link(cached, mounted)
    hand_over_file(mounted, 4321, 4322)
    assert mounted.stat().st_uid == 4321 and mounted.stat().st_nlink == 1
    assert mounted.read_text() == "content" and mounted.stat().st_mode & 0o777 == 0o644
    assert cached.stat().st_uid == 0 and cached.stat().st_nlink == 1
    with pytest.raises(OSError, match="not a regular file"):
        hand_over_file(tmp_path, 1, 1)
