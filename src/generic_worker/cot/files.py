"""The files chain of trust writes in the task's `generic-worker` directory, and the task's own.

The worker writes as root into a directory inside the task directory, which the task user owns:
during the run the task could have renamed `generic-worker` away and put its own directory or a
symlink in its place, or left links at the file names. So the directory is opened without
following symlinks and must belong to the worker (`WorkerDir`), and every file is created
afresh relative to that descriptor (`O_EXCL | O_NOFOLLOW` after removing whatever had the name).
By the time chain of trust runs, every process of the task is dead, so nothing can change the
directory between these checks and the uploads. All functions here block: call them in a thread.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from types import TracebackType

_CHUNK = 1 << 20
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC

FILE_MODE = 0o644
"""Readable by the task user, like the backing log: the uploader may read files as that user."""


class TaskFileError(Exception):
    """A file or directory the worker relies on was tampered with, or a task file is unusable."""


class WorkerDir:
    """The worker's own directory inside the task directory, held open by descriptor.

    Use as `with WorkerDir(path) as d:`. Raises TaskFileError when `path` is a symlink, not a
    directory, or not owned by the worker's user.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as e:
            raise TaskFileError(f"{path} cannot be opened as a directory: {e.strerror or e}") from e
        info = os.fstat(self.fd)
        if info.st_uid != os.geteuid():
            os.close(self.fd)
            raise TaskFileError(f"{path} is not the worker's directory (owned by uid {info.st_uid})")

    def __enter__(self) -> WorkerDir:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        os.close(self.fd)

    def _fresh(self, name: str) -> int:
        """A descriptor of a newly created, empty file `name` (whatever had that name is removed)."""
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            pass
        fd = os.open(name, _NEW_FILE, FILE_MODE, dir_fd=self.fd)
        os.fchmod(fd, FILE_MODE)  # the umask may have narrowed it
        return fd

    def write_new(self, name: str, data: bytes) -> Path:
        """Create `name` afresh with exactly `data`; its path."""
        fd = self._fresh(name)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        return self.path / name

    def copy_new(self, source: str, name: str, length: int) -> Path:
        """Create `name` afresh with the first `length` bytes of file `source` (in this directory).

        `length` is what the log writer reports as written: the copy is the log as it is now,
        even if more is appended while it runs. Constant memory (sendfile).
        """
        src = os.open(source, _READ, dir_fd=self.fd)
        try:
            if os.fstat(src).st_uid != os.geteuid():
                raise TaskFileError(f"{self.path / source} is not the worker's file")
            dst = self._fresh(name)
            try:
                offset = 0
                while offset < length:
                    sent = os.sendfile(dst, src, offset, min(_CHUNK, length - offset))
                    if sent == 0:
                        raise TaskFileError(
                            f"{self.path / source} is shorter than the {length} bytes written"
                        )
                    offset += sent
            finally:
                os.close(dst)
        finally:
            os.close(src)
        return self.path / name


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file (run it with the rights of whoever may read `path`)."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise TaskFileError(f"{path} is not a regular file")
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


def read_bounded(path: Path, limit: int) -> bytes | None:
    """The content of the regular file `path`, at most `limit` bytes; None when it does not exist.

    Meant to run with the task user's rights (`multiuser.identity`): symlinks are followed as
    that user would follow them. A FIFO or device never blocks or streams forever: only a
    regular file is read, and a file larger than `limit` is refused.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise TaskFileError(f"cannot be opened: {e.strerror or e}") from e
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise TaskFileError("is not a regular file")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, limit + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise TaskFileError(f"is more than the {limit} bytes allowed")
        return b"".join(chunks)
    finally:
        os.close(fd)
