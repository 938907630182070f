"""Safe, streaming extraction of zip and (compressed) tar archives into a mount directory.

Nothing an archive says can make us write outside the target directory:
- entry names that are absolute or climb out with `..` are refused (`<name>: illegal file path`);
- symbolic links must be relative and stay inside the target;
- hard links may only point at a regular file this same archive extracted (checked by inode);
- every directory is entered with `O_NOFOLLOW` (`paths.DirWalker`) and every file is created
  with `O_EXCL | O_NOFOLLOW`, so writing through a symbolic link (even one the archive just made)
  is impossible;
- device nodes and FIFOs are skipped; set-uid/set-gid bits are dropped;
- every byte and every new file is charged to a `Budget`, so a decompression bomb stops before
  it eats into `requiredDiskSpaceMegabytes`.
Tar archives are read as a stream (decompressed on the fly) and zip entries one by one, so
memory stays constant. Blocking: call through `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

from generic_worker.mounts.compression import (
    ARCHIVE_FORMATS,
    DECOMPRESSION_ERRORS,
    Decompressed,
    open_decompressed,
    unsupported,
)
from generic_worker.mounts.diskspace import Budget
from generic_worker.mounts.errors import MountError
from generic_worker.mounts.paths import DirWalker, entry_parts

CHUNK = 1 << 20
MAX_SYMLINK_TARGET = 4096
_ARCHIVE_ERRORS: tuple[type[Exception], ...] = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    *DECOMPRESSION_ERRORS,
)
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class ExtractResult:
    """What an extraction did (for the task log)."""

    files: int = 0
    directories: int = 0
    links: int = 0
    skipped: list[str] = field(default_factory=list)


def extract_archive(
    archive: Path, fmt: str, target: Path, budget: Budget, opened: BinaryIO | None = None
) -> ExtractResult:
    """Extract `archive` (a `format` from `ARCHIVE_FORMATS`) into the existing directory `target`.

    `opened`: the archive already open (the multiuser engine opens it as the worker, then
    extracts with the task user's rights, so every file created is the task user's own and
    nothing is written where the task user could not write).
    """
    if fmt not in ARCHIVE_FORMATS:
        raise MountError(unsupported(fmt, "archive"))
    try:
        with DirWalker(target) as walker:
            extractor = _Extractor(walker, budget)
            if fmt == "zip":
                _extract_zip(opened or archive, extractor)
            else:
                _extract_tar(opened or archive, fmt, extractor)
            return extractor.result
    except MountError as e:
        raise MountError(f"refusing to extract {fmt} archive {archive} into '{target}': {e}") from None
    except _ARCHIVE_ERRORS as e:
        raise MountError(f"cannot unarchive {archive} as {fmt} into '{target}': {e}") from None


def _extract_tar(archive: Path | BinaryIO, fmt: str, x: _Extractor) -> None:
    with open(archive, "rb") if isinstance(archive, Path) else contextlib.nullcontext(archive) as raw:
        stream: IO[bytes] | Decompressed = (
            raw if fmt == "tar" else open_decompressed(raw, fmt.removeprefix("tar."))
        )
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                x.tar_member(tar, member)


def _extract_zip(archive: Path | BinaryIO, x: _Extractor) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            x.zip_member(zf, info)


class _Extractor:
    """Creates entries under the walker's root; remembers the regular files for hard links."""

    def __init__(self, walker: DirWalker, budget: Budget) -> None:
        self.walker = walker
        self.budget = budget
        self.result = ExtractResult()
        self.regular: dict[tuple[str, ...], tuple[int, int]] = {}

    # ---- tar ------------------------------------------------------------------------------
    def tar_member(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = _parts(m.name)
        if m.isdir():
            self.directory(parts)
        elif m.isreg():
            source = tar.extractfile(m)
            assert source is not None  # isreg() members always have data
            self.file(parts, m.size, source.read, m.mode, m.mtime)
        elif m.issym():
            self.symlink(parts, m.linkname)
        elif m.islnk():
            self.hardlink(parts, m.linkname)
        else:
            self.result.skipped.append(f"{m.name} (device or FIFO)")

    # ---- zip ------------------------------------------------------------------------------
    def zip_member(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
        parts = _parts(info.filename)
        mode = info.external_attr >> 16
        mtime = time.mktime((*info.date_time, 0, 0, -1))
        if info.is_dir():
            self.directory(parts)
        elif stat.S_ISLNK(mode):
            if info.file_size > MAX_SYMLINK_TARGET:
                raise MountError(f"{info.filename}: symbolic link target longer than {MAX_SYMLINK_TARGET}")
            self.symlink(parts, zf.read(info).decode("utf-8", errors="surrogateescape"))
        else:
            with zf.open(info) as source:
                self.file(parts, info.file_size, source.read, mode or 0o644, mtime)

    # ---- entries --------------------------------------------------------------------------
    def directory(self, parts: tuple[str, ...]) -> None:
        if parts:
            self.budget.spend(0, entries=1)
            self.walker.open_dir(parts, create=True)
            self.result.directories += 1

    def _slot(self, parts: tuple[str, ...]) -> tuple[int, str]:
        if not parts:
            raise MountError("an entry that is not a directory has the target directory's own name")
        parent = self.walker.open_dir(parts[:-1], create=True)
        self.walker.clear_slot(parent, parts[-1], "/".join(parts))
        self.regular.pop(parts, None)
        return parent, parts[-1]

    def file(
        self, parts: tuple[str, ...], size: int, read: Callable[[int], bytes], mode: int, mtime: float
    ) -> None:
        self.budget.spend(0, entries=1)
        if size > self.budget.bytes_left:
            self.budget.spend(size)  # raises: the header already says it will not fit
        parent, name = self._slot(parts)
        fd = os.open(name, _FILE_FLAGS, 0o600, dir_fd=parent)
        try:
            while chunk := read(CHUNK):
                self.budget.spend(len(chunk))
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            os.fchmod(fd, (mode & 0o777) or 0o644)
            os.utime(fd, (mtime, mtime))
            st = os.fstat(fd)
        finally:
            os.close(fd)
        self.regular[parts] = (st.st_dev, st.st_ino)
        self.result.files += 1

    def symlink(self, parts: tuple[str, ...], link: str) -> None:
        shown = "/".join(parts)
        if link.startswith("/") or not link:
            raise MountError(f"{shown}: symbolic link to an absolute path {link!r}")
        if not symlink_stays_inside(len(parts) - 1, link):
            raise MountError(f"{shown}: symbolic link {link!r} points outside the target directory")
        self.budget.spend(0, entries=1)
        parent, name = self._slot(parts)
        os.symlink(link, name, dir_fd=parent)
        self.result.links += 1

    def hardlink(self, parts: tuple[str, ...], link: str) -> None:
        shown = "/".join(parts)
        try:
            source = tuple(entry_parts(link))
        except MountError:
            raise MountError(f"{shown}: hard link {link!r} points outside the target directory") from None
        identity = self.regular.get(source)
        if identity is None:
            raise MountError(
                f"{shown}: hard link to {link!r}, which is not a file extracted from this archive"
            )
        if source == parts:
            return  # a link to itself: the file is already there
        # A duplicate: opening the destination's directories may evict the walker's own copy.
        source_dir = os.dup(self.walker.open_dir(source[:-1], create=False))
        try:
            st = os.stat(source[-1], dir_fd=source_dir, follow_symlinks=False)
            if (st.st_dev, st.st_ino) != identity:
                raise MountError(f"{shown}: hard link to {link!r}, which was replaced after it was extracted")
            self.budget.spend(0, entries=1)
            parent, name = self._slot(parts)
            os.link(source[-1], name, src_dir_fd=source_dir, dst_dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(source_dir)
        self.regular[parts] = identity
        self.result.links += 1


def symlink_stays_inside(depth: int, link: str) -> bool:
    """True if a relative link made `depth` directories below the root cannot resolve above it.

    `..` is allowed only at the start of the target and at most `depth` times. A `..` after a
    name is refused even when it looks harmless: the name may be (or later become) a symbolic
    link, and `x/..` then climbs from wherever `x` points (`x -> .` makes `x/..` the root's
    parent). Every link obeying this rule resolves inside, whatever the other links are.
    """
    names = [p for p in link.split("/") if p not in ("", ".")]
    climbs = 0
    while climbs < len(names) and names[climbs] == "..":
        climbs += 1
    return climbs <= depth and ".." not in names[climbs:] and "\\" not in link


def _parts(name: str) -> tuple[str, ...]:
    return tuple(entry_parts(name))
