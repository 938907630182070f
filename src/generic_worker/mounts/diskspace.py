"""Free disk space, and the write budget that keeps downloads and archives from filling the disk.

Every byte a mount writes (a download, an extracted file, a decompressed file mount) is charged
to a `Budget`: the free space of the filesystem minus `requiredDiskSpaceMegabytes`, measured when
the step starts, and the free inodes likewise. A decompression bomb therefore stops with a clear
message once it would eat into the space the worker keeps free, long before the disk is full.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from generic_worker.mounts.errors import MountError

MIB = 1024 * 1024

INODE_RESERVE = 1000
"""Inodes an extraction always leaves free (besides the bytes)."""


def free_bytes(path: Path) -> int:
    """Bytes available to unprivileged users on the filesystem of `path` (`statvfs` f_bavail)."""
    st = os.statvfs(_existing(path))
    return st.f_bavail * st.f_frsize


def _existing(path: Path) -> Path:
    """`path` or its nearest existing ancestor (a directory about to be created has none yet)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


@dataclass
class Budget:
    """How many bytes and entries one mount step may still write."""

    bytes_left: int
    entries_left: int | None
    required_bytes: int
    where: Path
    written: int = field(default=0)

    @classmethod
    def measure(cls, path: Path, required_bytes: int) -> Budget:
        """The budget at `path` now (blocking: a `statvfs`)."""
        where = _existing(path)
        st = os.statvfs(where)
        entries = None if st.f_files == 0 else max(0, st.f_favail - INODE_RESERVE)
        return cls(st.f_bavail * st.f_frsize - required_bytes, entries, required_bytes, where)

    def spend(self, nbytes: int, entries: int = 0) -> None:
        """Charge a write of `nbytes` (and `entries` new files); `MountError` if over budget."""
        if nbytes > self.bytes_left:
            raise MountError(
                f"writing {nbytes} more bytes would leave less than requiredDiskSpaceMegabytes "
                f"({self.required_bytes // MIB} MiB) free on the filesystem of {self.where}; stopped "
                f"after {self.written} bytes (a decompression bomb, or content too large for this worker)"
            )
        if entries and self.entries_left is not None:
            if entries > self.entries_left:
                raise MountError(
                    f"creating more files would exhaust the free inodes on the filesystem of {self.where}; "
                    f"stopped after {self.written} bytes (an archive with too many entries)"
                )
            self.entries_left -= entries
        self.bytes_left -= nbytes
        self.written += nbytes
