"""Streaming HTTP downloads into a file, hashed (SHA-256) while they are written.

The body is read on the event loop in whatever pieces aiohttp hands out, gathered into ~1 MiB
blocks, and each block is written and hashed in a worker thread while the loop already receives
the next one, so memory stays at a few MiB and hashing costs no extra pass over the file. Every
block is charged to a `Budget` first, so a huge (or endless) body stops before it fills the disk.

Attempts are retried on connection problems and 5xx answers with the client's backoff; 4xx
answers are final. Each attempt may ask for a fresh URL (a signed artifact URL can expire).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from taskcluster import calculateSleepTime

from generic_worker import metrics
from generic_worker.mounts.diskspace import Budget
from generic_worker.mounts.errors import MountError
from generic_worker.tc import redact_url_secrets

BLOCK = 4 << 20
"""Size of the blocks handed to the writer thread."""

MAX_ATTEMPTS = 5
"""Attempts per download (connection problems and 5xx are retried)."""

DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
"""No total limit (a large download may take long); a stalled connection fails after 5 min."""

READ_BUFSIZE = 1 << 20
"""aiohttp's read buffer: at the default 64 KiB, flow control pauses the socket so often that a
loopback download spends ~15 % more CPU receiving (measured in bench/mounts_file.py)."""

HEADERS = {"Accept-Encoding": "gzip"}
"""What Go's client (the seed's) sends: a gzip `Content-Encoding` is undone while streaming."""


@dataclass(frozen=True)
class Downloaded:
    """The outcome of a successful download."""

    size: int
    sha256: str


def new_session() -> aiohttp.ClientSession:
    """The session downloads use (not the API calls' one: no total timeout, a larger buffer)."""
    return aiohttp.ClientSession(read_bufsize=READ_BUFSIZE, timeout=DOWNLOAD_TIMEOUT)


class RetryableError(Exception):
    """One attempt failed in a way worth retrying (network problem, 5xx)."""


class HashingWriter:
    """Writes blocks to an open file descriptor and hashes them, one block in flight at a time.

    A block is a list of the pieces aiohttp handed out (written with one `writev`, hashed piece
    by piece), so no bytes are copied to join them.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.hasher = hashlib.sha256()
        self.size = 0
        self._pending: asyncio.Future[None] | None = None

    def _write(self, pieces: list[bytes]) -> None:
        views = [memoryview(p) for p in pieces]
        while views:
            written = os.writev(self.fd, views[:1024])  # IOV_MAX
            while views and written >= len(views[0]):
                written -= len(views[0])
                views.pop(0)
            if written:
                views[0] = views[0][written:]
        for piece in pieces:
            self.hasher.update(piece)

    async def write(self, pieces: list[bytes]) -> None:
        """Queue a block; waits only for the previous one (so receiving and writing overlap)."""
        await self.drain()
        self.size += sum(len(p) for p in pieces)
        self._pending = asyncio.ensure_future(asyncio.to_thread(self._write, pieces))

    async def drain(self) -> None:
        """Wait until everything queued is written (also when cancelled: the thread owns the fd)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                await asyncio.shield(pending)
            except asyncio.CancelledError:
                await asyncio.wait({pending})
                raise


async def stream_body(response: aiohttp.ClientResponse, writer: HashingWriter, budget: Budget) -> None:
    """Copy a response body into `writer`, charging `budget` before every block."""
    pieces: list[bytes] = []
    gathered = 0
    async for piece in response.content.iter_any():
        pieces.append(piece)
        gathered += len(piece)
        if gathered >= BLOCK:
            budget.spend(gathered)
            metrics.DOWNLOADED_BYTES.inc(gathered)
            await writer.write(pieces)
            pieces, gathered = [], 0
    if pieces:
        budget.spend(gathered)
        metrics.DOWNLOADED_BYTES.inc(gathered)
        await writer.write(pieces)
    await writer.drain()


UrlFactory = Callable[[], Awaitable[str]]
"""Gives the URL to GET for one attempt (may raise `MountError` or `RetryableError`)."""

AttemptFailed = Callable[[str], None]
"""Told why an attempt failed, before the next one."""


async def download(
    session: aiohttp.ClientSession,
    url: UrlFactory,
    dest: Path,
    budget: Budget,
    on_retry: AttemptFailed,
) -> Downloaded:
    """GET into `dest` (created 0644, truncated per attempt) with retries; `MountError` at the end."""
    last = ""
    for attempt in range(MAX_ATTEMPTS):
        if attempt:
            await asyncio.sleep(calculateSleepTime(attempt))
        try:
            return await _attempt(session, await url(), dest, budget)
        except RetryableError as e:
            last = str(e)
            on_retry(last)
    raise MountError(f"giving up after {MAX_ATTEMPTS} attempts: {last}")


async def _attempt(session: aiohttp.ClientSession, url: str, dest: Path, budget: Budget) -> Downloaded:
    fd = await asyncio.to_thread(os.open, dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    writer = HashingWriter(fd)
    spent = budget.written
    done = False
    try:
        async with session.get(url, headers=HEADERS, timeout=DOWNLOAD_TIMEOUT) as response:
            if response.status >= 500:
                raise RetryableError(f"HTTP {response.status} {response.reason} from {_public(url)}")
            if response.status >= 400:
                raise MountError(f"HTTP {response.status} {response.reason} from {_public(url)}")
            await stream_body(response, writer, budget)
        expected = response.content_length
        if expected is not None and "Content-Encoding" not in response.headers and writer.size != expected:
            raise RetryableError(f"got {writer.size} bytes but Content-Length said {expected}")
        done = True
    except (TimeoutError, aiohttp.ClientError) as e:
        raise RetryableError(redact_url_secrets(f"{type(e).__name__}: {e}".rstrip(": "))) from None
    except OSError as e:
        raise MountError(f"could not write to {dest}: {e}") from None
    finally:
        await writer.drain()
        await asyncio.to_thread(os.close, fd)
        if not done:
            # The next attempt truncates the file and starts over: give the bytes back.
            budget.bytes_left += budget.written - spent
            budget.written = spent
    return Downloaded(writer.size, writer.hasher.hexdigest())


def _public(url: str) -> str:
    """The URL without its query (signatures and bewits stay out of logs)."""
    return url.split("?", 1)[0]
