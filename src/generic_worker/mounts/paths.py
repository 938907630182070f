"""Where mounts may write: inside the task directory, and never through a symbolic link.

Two layers of defence:
- `mount_target` checks a payload path (relative, or absolute inside the task directory) and
  refuses one that leaves the task directory, lexically (`..`) or through a symbolic link;
- `DirWalker` creates and opens directories one component at a time with `O_NOFOLLOW` relative
  to an already open directory, so an archive entry can never be written through a symbolic link,
  even one the same archive created a moment before (the classic "symlink, then write through
  it" escape). Blocking: use from a worker thread.
"""

from __future__ import annotations

import errno
import os
from collections import OrderedDict
from pathlib import Path

from generic_worker.mounts.errors import MountError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def is_inside(path: str, root: str) -> bool:
    """True if `path` is `root` or below it (both absolute and normalised)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def mount_target(task_dir: Path, given: str) -> Path:
    """The absolute, symlink-free path a mount writes to, or `MountError` if it is outside.

    Absolute paths are honoured (as upstream does today) only inside the task directory.
    """
    root = os.path.realpath(task_dir)
    joined = os.path.normpath(given if os.path.isabs(given) else os.path.join(root, given))
    if not is_inside(joined, root):
        raise MountError(f"cannot mount at path {given!r}: it is outside the task directory {root}")
    real = os.path.realpath(joined)
    if not is_inside(real, root):
        raise MountError(
            f"cannot mount at path {given!r}: it leads through a symbolic link to {real}, "
            f"outside the task directory {root}"
        )
    return Path(real)


def entry_parts(name: str) -> list[str]:
    """The components of an archive entry name, or `MountError` if it would leave its target.

    Leading `./` and `/` are not silently dropped: an absolute name or one with `..` climbing
    above the target is refused, as the seed's archiver did (`<path>: illegal file path`).
    """
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\\" in name or "\0" in name:
        raise MountError(f"{name}: illegal file path (absolute or not a POSIX path)")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise MountError(f"{name}: illegal file path (it climbs out of the target directory)")
            parts.pop()
            continue
        parts.append(part)
    return parts


class DirWalker:
    """Opens (creating when asked) directories below one root, never following a symbolic link.

    Keeps a small LRU of open directory descriptors so extracting many files into few
    directories does not reopen the chain each time. Use as a context manager.
    """

    def __init__(self, root: Path, *, dir_mode: int = 0o755, cache_size: int = 64) -> None:
        self.root = root
        self._dir_mode = dir_mode
        self._cache_size = cache_size
        self._fds: OrderedDict[tuple[str, ...], int] = OrderedDict()
        self._root_fd = os.open(root, _DIR_FLAGS)

    def __enter__(self) -> DirWalker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every descriptor."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1

    def open_dir(self, parts: tuple[str, ...], *, create: bool) -> int:
        """A descriptor of directory `root/parts...` (owned by the walker: do not close it)."""
        if not parts:
            return self._root_fd
        cached = self._fds.get(parts)
        if cached is not None:
            self._fds.move_to_end(parts)
            return cached
        parent = self.open_dir(parts[:-1], create=create)
        fd = self._open_child(parent, parts, create)
        self._fds[parts] = fd
        if len(self._fds) > self._cache_size:
            _, old = self._fds.popitem(last=False)
            os.close(old)
        return fd

    def _open_child(self, parent: int, parts: tuple[str, ...], create: bool) -> int:
        name = parts[-1]
        shown = "/".join(parts)
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise MountError(f"{shown}: no such directory") from None
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise MountError(
                    f"{shown}: not a directory (a file or a symbolic link is in the way); "
                    "refusing to write through it"
                ) from None
            raise
        try:
            os.mkdir(name, self._dir_mode, dir_fd=parent)
        except FileExistsError:
            pass  # made meanwhile; the open below still refuses a symbolic link
        return os.open(name, _DIR_FLAGS, dir_fd=parent)

    def clear_slot(self, parent: int, name: str, shown: str) -> None:
        """Remove a file or symbolic link at `name` so a new entry can take its place.

        An existing directory is left alone (a later entry may add to it) unless the new entry
        is not a directory, which is an error.
        """
        try:
            os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            return
        except IsADirectoryError:  # Linux's answer for a directory (EISDIR)
            raise MountError(f"{shown}: a directory is in the way") from None
