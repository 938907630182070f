"""Moving artifact bytes: reading files off the event loop and streaming them in PUTs.

Everything streams in 1 MiB chunks, so memory stays constant whatever the file size:
- `FileSource` is an open descriptor read with `pread` in worker threads (`asyncio.to_thread`),
  so one open file serves every retry of a PUT and hashing happens in the same thread;
- the gzip copies of `compression.py` are `FileSource`s too;
- `put_with_retries` PUTs a source to a URL, retrying network errors, 5xx and S3's spurious 400
  (seed bug 1394557) with the client's backoff, optionally asking for a fresh URL before each
  retry (an expired presigned URL answers 403).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from taskcluster import calculateSleepTime

from generic_worker import metrics
from generic_worker.tc import redact_url_secrets

CHUNK = 1 << 20
"""Read size: large enough for ~1 GB/s through a thread hop, small enough to be irrelevant."""

PUT_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
"""No total limit (a large upload may take long); a stalled connection fails after 5 min."""

RETRYABLE_STATUS = frozenset({400, 403, 408, 429})
"""Besides 5xx: 400 (S3 bug 1394557), 403 (expired presigned URL: retried with a fresh one)."""


class LocalReadError(Exception):
    """The local file could not be read (vanished, shrank, permission): the task's problem."""


class PutError(Exception):
    """A PUT failed for good (after retries, or with a status that is not worth retrying)."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class FileSource:
    """An open regular file of a known size, read by offset in worker threads.

    Use as `async with await FileSource.open(path)`; reading never moves a shared file position,
    so a retried PUT simply starts again at offset 0.
    """

    def __init__(self, fd: int, size: int, description: str, trailer: bytes = b"") -> None:
        self.fd = fd
        self.size = size + len(trailer)
        self.description = description
        self.read_error: LocalReadError | None = None
        self._file_size = size
        self._trailer = trailer

    @classmethod
    async def open(cls, path: Path, trailer: bytes = b"") -> FileSource:
        """Open `path` (no symlink in its last component) and check it is still a regular file.

        `trailer` is read after the file's content, as if it were in the file.
        """
        return await asyncio.to_thread(cls.open_blocking, path, trailer)

    @classmethod
    def open_blocking(cls, path: Path, trailer: bytes = b"") -> FileSource:
        """Blocking `open` (for a thread that runs with a task user's rights)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as err:
            raise LocalReadError(f"Could not read file '{path}': {err.strerror}") from err
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise LocalReadError(f"Could not read file '{path}': not a regular file")
        return cls(fd, info.st_size, f"file '{path}'", trailer)

    async def __aenter__(self) -> FileSource:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the descriptor (in a thread: freeing a large unlinked file can take a while)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            await asyncio.to_thread(os.close, fd)

    def read_at(self, offset: int, length: int) -> bytes:
        """Blocking: `length` bytes at `offset`; LocalReadError if the file is shorter than its size."""
        if offset + length > self._file_size:
            in_file = max(0, self._file_size - offset)
            start = max(0, offset - self._file_size)
            head = self.read_at(offset, in_file) if in_file else b""
            return head + self._trailer[start : start + length - in_file]
        try:
            data = os.pread(self.fd, length, offset)
        except OSError as err:
            raise LocalReadError(f"Could not read {self.description}: {err.strerror}") from err
        if len(data) < length:
            message = f"Could not read {self.description}: it shrank while being uploaded"
            raise LocalReadError(message)
        return data

    def sha256(self) -> str:
        """Blocking: the hex sha256 of the whole content (read by offset, like an upload)."""
        digest = hashlib.sha256()
        for offset in range(0, self.size, CHUNK):
            digest.update(self.read_at(offset, min(CHUNK, self.size - offset)))
        return digest.hexdigest()

    async def read_all(self) -> bytes:
        """The whole content (for small files only: object-service `dataInline` below 8 KiB)."""
        return await asyncio.to_thread(self.read_at, 0, self.size)

    async def chunks(self, digests: Digests | None = None) -> AsyncIterator[bytes]:
        """The content in 1 MiB chunks, read (and hashed) in worker threads, one chunk ahead.

        The next chunk is read while the current one is sent, so the PUT never waits for the
        disk (or the page cache) between chunks. Reads stay in order, so digests are right.
        A read failure is kept in `read_error` before it is raised, because aiohttp reports it
        as a connection problem; the caller then knows it is local and not worth a retry.
        """

        def read(offset: int) -> asyncio.Future[bytes]:
            length = min(CHUNK, self.size - offset)
            return asyncio.ensure_future(asyncio.to_thread(self._read_and_hash, offset, length, digests))

        offset = 0
        ahead = read(0) if self.size > 0 else None
        try:
            while ahead is not None:
                try:
                    data = await ahead
                except LocalReadError as err:
                    ahead = None
                    self.read_error = err
                    raise
                offset += len(data)
                ahead = read(offset) if offset < self.size else None
                yield data
        finally:
            if ahead is not None:  # the consumer stopped early: let the read end before we do
                with contextlib.suppress(Exception):
                    await asyncio.shield(ahead)

    def _read_and_hash(self, offset: int, length: int, digests: Digests | None) -> bytes:
        data = self.read_at(offset, length)
        if digests is not None:
            digests.update(data)
        return data


@dataclass
class Digests:
    """sha256 and sha512 of the bytes streamed so far (what the object service's finishUpload wants)."""

    sha256: Any = field(default_factory=hashlib.sha256)
    sha512: Any = field(default_factory=hashlib.sha512)
    length: int = 0

    def update(self, data: bytes) -> None:
        """Feed one chunk (called in the reading thread; hashlib releases the GIL on large data)."""
        self.sha256.update(data)
        self.sha512.update(data)
        self.length += len(data)

    def hashes(self) -> dict[str, str]:
        """The `hashes` object of finishUpload."""
        return {"sha256": self.sha256.hexdigest(), "sha512": self.sha512.hexdigest()}


@dataclass(frozen=True)
class PutTarget:
    """Where to PUT and with which headers (Content-Length is added from the source)."""

    url: str
    headers: Mapping[str, str]


def _is_retryable(status: int | None) -> bool:
    return status is None or status >= 500 or status in RETRYABLE_STATUS


def public_url(url: str) -> str:
    """The URL without its query string: presigned URLs carry signatures that grant access."""
    return url.split("?", 1)[0]


async def put_with_retries(
    session: aiohttp.ClientSession,
    target: PutTarget,
    source: FileSource,
    *,
    max_retries: int,
    refresh: Callable[[], Awaitable[PutTarget]] | None = None,
    digests: Callable[[], Digests] | None = None,
) -> Digests | None:
    """PUT `source` to `target`, retrying transient failures with backoff; return the digests.

    `refresh` gives a fresh target before each retry (a presigned URL may have expired);
    `digests` makes a fresh hasher per attempt, and the successful attempt's one is returned.
    Raises PutError after the last attempt, LocalReadError at once when the file cannot be read.
    """
    attempt = 0
    while True:
        hasher = digests() if digests is not None else None
        try:
            await _put_once(session, target, source, hasher)
            return hasher
        except PutError as err:
            if not _is_retryable(err.status) or attempt >= max_retries:
                raise
        attempt += 1
        await asyncio.sleep(calculateSleepTime(attempt))
        if refresh is not None:
            target = await refresh()


async def _put_once(
    session: aiohttp.ClientSession, target: PutTarget, source: FileSource, digests: Digests | None
) -> None:
    headers = {k: v for k, v in target.headers.items() if k.lower() != "content-length"}
    headers["Content-Length"] = str(source.size)
    source.read_error = None
    try:
        async with session.put(
            target.url,
            data=source.chunks(digests),
            headers=headers,
            skip_auto_headers=("Content-Type",),
            allow_redirects=False,
            timeout=PUT_TIMEOUT,
        ) as response:
            if response.status >= 300:
                detail = (await response.content.read(512)).decode("utf-8", errors="replace")
                message = f"HTTP {response.status} from PUT {public_url(target.url)}: {detail.strip()}"
                raise PutError(message, response.status)
            await response.read()
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as err:
        if source.read_error is not None:
            raise source.read_error from err
        text = redact_url_secrets(str(err) or type(err).__name__)
        raise PutError(f"network error on PUT {public_url(target.url)}: {text}", None) from err
    if digests is not None and digests.length != source.size:
        # The server answered before reading everything: the hashes would be wrong.
        raise PutError(f"PUT {public_url(target.url)} ended before the whole body was sent", None)
    metrics.UPLOADED_BYTES.inc(source.size)
