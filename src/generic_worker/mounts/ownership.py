"""Handing mounted content to the multiuser engine's task user.

Everything a mount creates for a task must be the task user's own, as its commands will change
it. Archives are extracted and directories made with the task user's rights (see `mounting`),
so they need nothing here. What the worker places itself needs a hand-over:

- a file mount: a hard link into the downloads cache is first replaced by a private copy (the
  task must never be able to change the cache's file), then the file is chown'ed;
- a writable cache that an earlier task user filled: every entry is chown'ed (`hand_over_tree`,
  one pass with `fchownat(AT_SYMLINK_NOFOLLOW)` relative to directory descriptors opened without
  following links). This is O(files) per hand-over; `bench/cache_handover.py` compares it with
  `chown -R` of the same tree, and docs/security.md discusses the O(1) alternative.

All of it runs before the task's first command, when no process of the task user exists, so the
tree cannot change under the walk. Blocking: call from a worker thread.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import slugid

from generic_worker.mounts.files import copy_file


def hand_over_file(target: Path, uid: int, gid: int) -> None:
    """Make the regular file `target` a private file of `uid`:`gid` (copy first if hard-linked)."""
    info = os.lstat(target)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(f"{target} is not a regular file")
    if info.st_nlink > 1:
        private = target.with_name(f".{target.name}.{slugid.nice()}")
        copy_file(target, private)
        os.chmod(private, stat.S_IMODE(info.st_mode))
        os.replace(private, target)
    os.chown(target, uid, gid, follow_symlinks=False)


def hand_over_tree(top: Path, uid: int, gid: int) -> int:
    """Chown `top` and everything below it to `uid`:`gid`, never following a symlink; return the count."""
    count = 0
    os.chown(top, uid, gid, follow_symlinks=False)
    for _root, dirs, files, dir_fd in os.fwalk(top, follow_symlinks=False):
        for name in dirs + files:
            try:
                os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            count += 1
    return count + 1
