"""Turning the payload's `artifacts` entries into artifacts, checking every path on the way.

Rules (seed-gw §3.9, modern-gw §1.2, TARGET §9):
- name: the entry's `name`, else the path as given; files of a directory artifact are named
  `<name>/<path relative to the directory>` and are listed in lexical (byte) order, depth first;
- expiry: the entry's `expires`, else the task's;
- a path may not leave the task directory: a relative path whose `..` segments climb out, an
  absolute path elsewhere, or a symlink resolving outside (checked on the fully resolved path)
  gives an `invalid-resource-on-worker` error artifact and the outside file is never opened;
- inside a directory artifact, symlinks are not followed for the walk; a symlink to a file in the
  task directory is uploaded as that file, a symlink to a directory gives the upstream
  "exists as a directory" error artifact and a symlink resolving outside gives an
  `invalid-resource-on-worker` error artifact (decision: an error, not a silent skip, so the task
  author sees it; it fails the task unless the entry is optional);
- missing -> `file-missing-on-worker`, wrong kind or not a regular file (FIFO, device...) ->
  `invalid-resource-on-worker`, no read permission -> `file-not-readable-on-worker`;
- a hard link (more than one link) to a file not owned by the task directory's owner is
  `invalid-resource-on-worker`: it would otherwise smuggle an outside file in (e.g. a root file
  linked into a multiuser task directory where the kernel's protected_hardlinks is off).

Resolution runs with the worker's privileges (root in the multiuser engine); the containment and
hard-link checks are what keep a task from publishing files it could not read itself.

A `FileArtifact` carries the fully resolved path (no symlinks left), which the uploader opens with
`O_NOFOLLOW`, so the file that was checked is the file that is read.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from generic_worker.artifacts.content import default_content_encoding, guess_content_type
from generic_worker.artifacts.model import Artifact, ErrorArtifact, ErrorReason, FileArtifact
from generic_worker.timefmt import parse_tc

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
"""O_NONBLOCK so that checking a FIFO can never hang; O_NOFOLLOW on an already resolved path."""


@dataclass(frozen=True)
class _Base:
    """What a payload entry gives every artifact resolved from it."""

    name: str
    expires: datetime
    content_type: str | None
    content_encoding: str | None
    optional: bool

    def error(self, path: str, reason: ErrorReason, message: str) -> ErrorArtifact:
        return ErrorArtifact(self.name, path, message, str(reason), self.expires, self.optional)

    def child(self, relative: str) -> _Base:
        name = posixpath.normpath(posixpath.join(self.name, relative))
        return _Base(name, self.expires, self.content_type, self.content_encoding, self.optional)


class _TaskDir:
    """The task directory, lexically and fully resolved, and the containment checks against it."""

    def __init__(self, task_dir: Path) -> None:
        self.lexical = os.path.normpath(os.path.abspath(task_dir))
        self.real = os.path.realpath(task_dir)
        try:
            self.owner: int | None = os.stat(self.real).st_uid
        except OSError:
            self.owner = None

    def full_path(self, given: str) -> str:
        """Return the absolute, lexically normalised path of a payload path (messages show it)."""
        return os.path.normpath(os.path.join(self.lexical, given))

    def escape(self, given: str, full: str) -> tuple[str | None, str]:
        """(why the path leaves the task directory or None, the fully resolved path)."""
        if not os.path.isabs(given) and not _inside(full, self.lexical):
            return f"Artifact path '{full}' is outside the task directory '{self.lexical}'", full
        real = os.path.realpath(full)
        if not _inside(real, self.real):
            return (
                f"Artifact path '{full}' resolves to '{real}', outside the task directory '{self.lexical}'",
                real,
            )
        return None, real


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def resolve_payload_artifacts(
    entries: Sequence[Mapping[str, Any]], task_dir: Path, task_expires: datetime
) -> list[Artifact]:
    """Resolve schema-valid `payload.artifacts` entries into artifacts, in payload order.

    Blocking: it stats, lists and opens files. The engine calls it with `asyncio.to_thread`.
    Never raises for a problem with a path: each one becomes an `ErrorArtifact`.
    """
    task = _TaskDir(task_dir)
    resolved: list[Artifact] = []
    for entry in entries:
        given = str(entry["path"])
        base = _Base(
            name=str(entry.get("name") or given),
            expires=_expiry(entry.get("expires"), task_expires),
            content_type=entry.get("contentType") or None,
            content_encoding=entry.get("contentEncoding") or None,
            optional=bool(entry.get("optional", False)),
        )
        if entry.get("type") == "directory":
            resolved.extend(_resolve_directory(task, base, given))
        else:
            resolved.append(_resolve_file(task, base, given, task.full_path(given)))
    return resolved


def _expiry(value: Any, default: datetime) -> datetime:
    if value is None or value == "":
        return default
    return value if isinstance(value, datetime) else parse_tc(str(value))


def _resolve_file(task: _TaskDir, base: _Base, given: str, full: str) -> Artifact:
    """One file: containment, existence, kind and readability checks, then content rules."""
    escape, real = task.escape(given, full)
    if escape:
        return base.error(given, ErrorReason.INVALID_RESOURCE, escape)
    try:
        info = os.stat(real)
    except PermissionError:
        return base.error(given, ErrorReason.NOT_READABLE, f"Could not read file '{full}': permission denied")
    except OSError:
        return base.error(given, ErrorReason.FILE_MISSING, f"Could not read file '{full}'")
    if stat.S_ISDIR(info.st_mode):
        message = f"File artifact '{full}' exists as a directory, not a file, on the worker"
        return base.error(given, ErrorReason.INVALID_RESOURCE, message)
    if not stat.S_ISREG(info.st_mode):
        message = f"File artifact '{full}' is not a regular file on the worker"
        return base.error(given, ErrorReason.INVALID_RESOURCE, message)
    if info.st_nlink > 1 and task.owner is not None and info.st_uid != task.owner:
        # A hard link to someone else's file is a way out of the task directory that no path
        # check can see (the kernel's protected_hardlinks usually prevents making one).
        message = f"File artifact '{full}' is a hard link to a file the task does not own"
        return base.error(given, ErrorReason.INVALID_RESOURCE, message)
    try:
        os.close(os.open(real, _OPEN_FLAGS))
    except PermissionError:
        return base.error(given, ErrorReason.NOT_READABLE, f"Could not read file '{full}': permission denied")
    except OSError:
        return base.error(given, ErrorReason.FILE_MISSING, f"Could not read file '{full}'")
    return FileArtifact(
        name=base.name,
        path=Path(real),
        expires=base.expires,
        content_type=base.content_type or guess_content_type(full),
        content_encoding=base.content_encoding or default_content_encoding(full),
        optional=base.optional,
        task_file=True,
    )


def _resolve_directory(task: _TaskDir, base: _Base, given: str) -> list[Artifact]:
    """Resolve a directory entry: check the directory itself, then walk it."""
    full = task.full_path(given)
    escape, real = task.escape(given, full)
    if escape:
        return [base.error(given, ErrorReason.INVALID_RESOURCE, escape)]
    try:
        info = os.stat(real)
    except OSError:
        return [base.error(given, ErrorReason.FILE_MISSING, f"Could not read directory '{full}'")]
    if not stat.S_ISDIR(info.st_mode):
        message = f"Directory artifact '{full}' exists as a file, not a directory, on the worker"
        return [base.error(given, ErrorReason.INVALID_RESOURCE, message)]
    return _DirectoryWalk(task, base, given, full, real).run()


class _DirectoryWalk:
    """Files below a directory artifact, depth first, each directory's entries in byte order.

    No symlink is followed for the walk (a symlink is resolved as a file). Each file is named
    `<name>/<relative>`; error artifacts keep the path relative to the task directory as upstream
    does (`<given>/<relative>`). An explicit stack, so deep trees cannot hit the recursion limit.
    """

    def __init__(self, task: _TaskDir, base: _Base, given: str, full: str, real: str) -> None:
        self.task, self.base, self.given, self.full, self.real = task, base, given, full, real
        self.found: list[Artifact] = []

    def run(self) -> list[Artifact]:
        stack: list[tuple[str, Iterator[os.DirEntry[str]]]] = []
        self._push(stack, "")
        while stack:
            relative, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                continue
            child = _join(relative, entry.name)
            if entry.is_dir(follow_symlinks=False):
                self._push(stack, child)
            else:
                full = os.path.join(self.full, child)
                given = _join(self.given, child)
                self.found.append(_resolve_file(self.task, self.base.child(child), given, full))
        return self.found

    def _push(self, stack: list[tuple[str, Iterator[os.DirEntry[str]]]], relative: str) -> None:
        """List one directory onto the stack, or record an error artifact when it cannot be read."""
        try:
            with os.scandir(os.path.join(self.real, relative)) as listing:
                entries = sorted(listing, key=lambda entry: os.fsencode(entry.name))
        except OSError:
            shown = os.path.join(self.full, relative) if relative else self.full
            owner = self.base.child(relative) if relative else self.base
            message = f"Could not read directory '{shown}'"
            error = owner.error(_join(self.given, relative), ErrorReason.FILE_MISSING, message)
            self.found.append(error)
            return
        stack.append((relative, iter(entries)))


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name
