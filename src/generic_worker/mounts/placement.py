"""Putting a file mount's content in place: a copy made while the source is verified, or a hard link.

`DownloadCache.place` decides which (see there); this module does the file-system side for one
target: creating its directory, charging the disk budget, copying (with `copy_file_range`) at the
same time as hashing the cached file, or hard-linking a fresh download. Errors come out as the
seed's `Not able to mount content from <source> at path <target>` failures.
"""

from __future__ import annotations

import asyncio
import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from generic_worker.mounts.diskspace import Budget
from generic_worker.mounts.errors import MountError
from generic_worker.mounts.files import copy_file, hash_file
from generic_worker.mounts.logs import MountLog
from generic_worker.mounts.store import remove_path


@dataclass
class CopyOutcome:
    """How a copy made alongside a hash went; `check()` raises its error, if any."""

    error: BaseException | None = None

    def check(self) -> None:
        """Raise the copy's error (a copy is only used once the hash said the source is good)."""
        if self.error is not None:
            raise self.error


@dataclass
class Placement:
    """One file mount's target, and how to report on it."""

    target: Path
    description: str
    log: MountLog
    required_bytes: int
    _announced: bool = field(default=False, init=False)

    def _failure(self, error: BaseException) -> MountError:
        return MountError(f"Not able to mount content from {self.description} at path {self.target}: {error}")

    async def _prepare(self, size: int) -> None:
        """Create the target's directory and charge `size` bytes; `MountError` if impossible."""
        parent = self.target.parent
        try:
            await asyncio.to_thread(parent.mkdir, mode=0o700, parents=True, exist_ok=True)
            budget = await asyncio.to_thread(Budget.measure, parent, self.required_bytes)
            budget.spend(size)
        except (MountError, OSError) as e:
            raise self._failure(e) from None

    def announce(self, source: Path) -> None:
        """The seed's lines for the copy (logged once the content is known to be good)."""
        if not self._announced:
            self._announced = True
            self.log.info(f"[mounts] Creating directory {self.target.parent} with permissions 0700")
            self.log.info(f"[mounts] Copying {source} to {self.target}")

    async def copy_while_hashing(self, source: Path, size: int) -> tuple[str | None, CopyOutcome]:
        """Hash `source` and copy it to the target at once; (sha256 or None if unreadable, outcome)."""
        await self._prepare(size)
        hashed, copied = await asyncio.gather(
            asyncio.to_thread(hash_file, source),
            asyncio.to_thread(copy_file, source, self.target),
            return_exceptions=True,
        )
        outcome = CopyOutcome(self._failure(copied) if isinstance(copied, BaseException) else None)
        if isinstance(hashed, BaseException):
            if not isinstance(hashed, OSError):
                raise hashed
            return None, outcome
        return hashed, outcome

    async def link(self, source: Path, size: int) -> bool:
        """Hard-link `source` to the target (True), or copy it where links cannot be made (False)."""
        await self._prepare(size)
        try:
            return await asyncio.to_thread(_link_or_copy, source, self.target)
        except OSError as e:
            raise self._failure(e) from None


def _link_or_copy(source: Path, target: Path) -> bool:
    if target.is_dir() and not target.is_symlink():
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(target))
    remove_path(target)  # a file of that name (an earlier mount) is replaced, as a copy would
    try:
        os.link(source, target)
        return True
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
    copy_file(source, target)  # another filesystem, or links not allowed there
    return False
