"""The kinds of artifact a task run publishes, as plain immutable values.

Resolution (`resolve.py`) turns payload entries into these; the uploader (`upload.py`) turns
them into createArtifact requests and transfers. Features create them directly for their own
artifacts (logs, chain of trust, live-log reference and link).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from generic_worker.artifacts.transfer import FileSource


class ErrorReason(StrEnum):
    """The `reason` values the queue accepts for `error` artifacts."""

    FILE_MISSING = "file-missing-on-worker"
    INVALID_RESOURCE = "invalid-resource-on-worker"
    TOO_LARGE = "too-large-file-on-worker"
    NOT_READABLE = "file-not-readable-on-worker"


@dataclass(frozen=True)
class FileArtifact:
    """A file on the worker, uploaded as `s3` (or `object` when the worker makes object artifacts).

    `content_encoding` is "gzip" (compressed for the transfer, served with `Content-Encoding: gzip`)
    or "identity". `optional`: an upload failure is only a warning (upstream behaviour).
    `trailer`: bytes uploaded after the file's content (the task log's truncation line when the
    disk had no room for it). `plain_if_no_room`: when the disk has no room for the gzip copy,
    upload the file as it is (identity) instead of failing (the task log: it must get through).
    `precompressed`, for gzip: gives the gzip copy already made while the file was written (the
    backing log), so the upload does not compress it again; None from it means "compress it now".
    """

    name: str
    path: Path
    expires: datetime
    content_type: str
    content_encoding: str
    optional: bool = False
    trailer: bytes = b""
    plain_if_no_room: bool = False
    task_file: bool = field(default=False, compare=False)
    """A path the task controls (payload artifacts): opened with the task user's rights."""
    precompressed: Callable[[], Awaitable[FileSource | None]] | None = field(
        default=None, compare=False, repr=False
    )


@dataclass(frozen=True)
class ReferenceArtifact:
    """A redirect to a URL outside the queue (e.g. the live log while the task runs)."""

    name: str
    url: str
    expires: datetime
    content_type: str


@dataclass(frozen=True)
class LinkArtifact:
    """An alias of another artifact of the same run (e.g. live.log -> live_backing.log)."""

    name: str
    target: str
    expires: datetime
    content_type: str | None = None


@dataclass(frozen=True)
class ErrorArtifact:
    """Why an artifact the payload asked for could not be published; fails the task unless optional.

    `path` is the path as the payload gave it (relative to the task directory), for the log line.
    """

    name: str
    path: str
    message: str
    reason: str
    expires: datetime
    optional: bool = False


Artifact = FileArtifact | ReferenceArtifact | LinkArtifact | ErrorArtifact
"""Any artifact the uploader accepts."""


@dataclass(frozen=True)
class UploadedArtifact:
    """A record of one successful upload, for chain of trust (which hashes the local files later).

    `storage_type` is "s3", "object", "reference", "link" or "error"; `path` and
    `content_encoding` are set for file artifacts only. `sha256` is the hex digest of the file's
    content as it was read for the upload (before any gzip), when the uploader was asked to
    record it (`ArtifactUploader.hash_files`, set by chain of trust).
    """

    name: str
    storage_type: str
    path: Path | None = None
    content_encoding: str | None = None
    content_type: str | None = None
    sha256: str | None = None
