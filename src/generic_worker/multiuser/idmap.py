"""Idmapped bind mounts: a writable cache handed to any task user in O(1).

A cache's files are stored on disk as one stable owner, the system account `CACHE_OWNER`. To
hand a cache to a task, the worker bind-mounts the cache directory at the task's path with an
id mapping "on-disk CACHE_OWNER = this task's user" (Linux 5.12+ `mount_setattr` with
`MOUNT_ATTR_IDMAP`). Through that mount the task user owns every file; whatever it creates is
stored as `CACHE_OWNER`; files of any other owner appear as the overflow id and are read-only.
No file is touched, whatever the size of the cache; the next task gets its own mapping.

The cache directory never moves (it stays in the root-only `cachesDir`), a mount point cannot be
renamed or removed by the task, and unmounting is one system call. Where the kernel, the file
system or the container refuses idmapped mounts, `probe()` says so at start and the mounts fall
back to moving the cache and chown'ing its files (O(files)).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pwd
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from generic_worker.multiuser.accounts import AccountError, create_system_user
from generic_worker.process import user_namespace_fd

log = logging.getLogger(__name__)

CACHE_OWNER = "gw-cache-owner"
"""The system account that owns every writable cache's files on disk (multiuser engine)."""

_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
_OPEN_TREE_CLONE = 1
_OPEN_TREE_CLOEXEC = os.O_CLOEXEC
_MOUNT_ATTR_IDMAP = 0x00100000
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MNT_DETACH = 2
# The new mount API's numbers are the same on every architecture.
_SYS_OPEN_TREE, _SYS_MOVE_MOUNT, _SYS_MOUNT_SETATTR = 428, 429, 442

_OCTAL = re.compile(r"\\([0-7]{3})")
_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.syscall.restype = ctypes.c_long


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


def _check(rc: int, what: str, path: Path) -> int:
    if rc < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what} {path}: {os.strerror(code)}")
    return rc


@dataclass(frozen=True)
class Owner:
    """The on-disk owner of caches."""

    uid: int
    gid: int


def bind(source: Path, target: Path, owner: Owner, uid: int, gid: int) -> None:
    """Bind-mount directory `source` at the existing directory `target`, on-disk `owner` = uid:gid.

    Blocking (a short-lived child process makes the mapping): use `asyncio.to_thread`.
    """
    userns = user_namespace_fd(f"{owner.uid} {uid} 1\n", f"{owner.gid} {gid} 1\n")
    tree = -1
    try:
        flags = _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC
        tree = _check(
            _LIBC.syscall(_SYS_OPEN_TREE, _AT_FDCWD, os.fsencode(source), flags), "open_tree", source
        )
        attr = _MountAttr(_MOUNT_ATTR_IDMAP, 0, 0, userns)
        rc = _LIBC.syscall(
            _SYS_MOUNT_SETATTR, tree, b"", _AT_EMPTY_PATH, ctypes.byref(attr), ctypes.sizeof(attr)
        )
        _check(rc, "mount_setattr (idmap)", source)
        # The target was just made by the task user, and no process of it runs yet.
        rc = _LIBC.syscall(
            _SYS_MOVE_MOUNT, tree, b"", _AT_FDCWD, os.fsencode(target), _MOVE_MOUNT_F_EMPTY_PATH
        )
        _check(rc, "move_mount to", target)
    finally:
        os.close(userns)
        if tree >= 0:
            os.close(tree)


def pin(directory: Path) -> None:
    """Bind-mount `directory` onto itself, so that nobody can rename or remove it. Blocking.

    A mount point cannot be renamed (EBUSY), even by the owner of its parent directory: the
    worker pins its own `generic-worker/` folder inside a task directory the task user owns.
    """
    flags = _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC
    tree = _check(
        _LIBC.syscall(_SYS_OPEN_TREE, _AT_FDCWD, os.fsencode(directory), flags), "open_tree", directory
    )
    try:
        rc = _LIBC.syscall(
            _SYS_MOVE_MOUNT, tree, b"", _AT_FDCWD, os.fsencode(directory), _MOVE_MOUNT_F_EMPTY_PATH
        )
        _check(rc, "move_mount to", directory)
    finally:
        os.close(tree)


def unbind(target: Path) -> None:
    """Detach the mount at `target` (lazily: it goes as soon as nothing uses it). Blocking."""
    _check(_LIBC.umount2(os.fsencode(target), _MNT_DETACH), "umount", target)


def mounts_under(root: Path) -> list[Path]:
    """Mount points below `root` (deepest first), from /proc/self/mountinfo."""
    prefix = str(root).rstrip("/") + "/"
    found = []
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 4:
            point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4])  # e.g. \040 = space
            if point.startswith(prefix):
                found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def unbind_all_under(root: Path) -> list[Path]:
    """Detach every mount below `root` (left by a worker that crashed); return them. Blocking."""
    detached = []
    for point in mounts_under(root):
        with contextlib.suppress(OSError):
            unbind(point)
            detached.append(point)
    return detached


async def cache_owner() -> Owner:
    """The on-disk owner of caches, created as a system account the first time."""
    try:
        entry = pwd.getpwnam(CACHE_OWNER)
    except KeyError:
        await create_system_user(CACHE_OWNER)
        entry = pwd.getpwnam(CACHE_OWNER)
    return Owner(entry.pw_uid, entry.pw_gid)


async def probe(where: Path) -> Owner | None:
    """Whether idmapped cache mounts work in `where` (the caches directory); their owner if so."""
    try:
        owner = await cache_owner()
    except (AccountError, KeyError) as e:
        log.warning(
            "idmapped cache mounts unavailable (no %s account: %s); caches are chown'ed", CACHE_OWNER, e
        )
        return None
    try:
        await asyncio.to_thread(_try_bind, where, owner)
    except OSError as e:
        log.warning("idmapped cache mounts unavailable (%s); caches are handed over by chown instead", e)
        return None
    return owner


def _try_bind(where: Path, owner: Owner) -> None:
    where.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=where, prefix=".idmap-probe-") as tmp:
        source, target = Path(tmp, "s"), Path(tmp, "t")
        source.mkdir()
        target.mkdir()
        os.chown(source, owner.uid, owner.gid)
        bind(source, target, owner, 65534, 65534)
        try:
            if os.stat(target).st_uid != 65534:
                raise OSError(0, "the mapping had no effect")
        finally:
            unbind(target)
