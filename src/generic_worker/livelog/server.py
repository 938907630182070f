"""The live log server: one HTTP(S) server for the worker, streaming each running task's log.

`GET /log/<token>` answers with the task's backing log from its first byte and then follows it
as it grows, until the log is closed (the task has ended and everything is written). Every
reader reads the backing FILE at its own pace with one chunk in flight, so any number of
readers share nothing: a slow or stalled reader holds one descriptor and one chunk, never
slows the task (which only appends to the file) and never grows the worker's memory. A reader
whose socket takes no data for `WRITE_STALL_TIMEOUT` is cut off.

Tokens are registered per task and revoked when its live log stops: a revoked or unknown
token gets 401 `Access denied` and nothing else. Readers already connected when a token is
revoked go on to the end of the log.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import secrets
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from aiohttp import web

from generic_worker import metrics

if TYPE_CHECKING:
    from generic_worker.engine.tasklog import TaskLog

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; charset=utf-8"
CHUNK = 256 * 1024
"""Largest read per step; a reader catching up sends the log in pieces this big."""

WRITE_STALL_TIMEOUT = 120.0
"""A reader whose connection accepts nothing for this long is disconnected."""

CORS = {"Access-Control-Allow-Origin": "*"}
_STREAM_HEADERS = {
    **CORS,
    "Access-Control-Expose-Headers": "Transfer-Encoding",
    "Content-Type": CONTENT_TYPE,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
}


class LiveLogServer:
    """Serves registered task logs at `/log/<token>` on one port for the whole worker."""

    def __init__(self) -> None:
        self._logs: dict[str, TaskLog] = {}
        self._readers: set[asyncio.Task[object]] = set()
        self._runner: web.AppRunner | None = None
        # Reads go through two threads of their own: the default executor also runs gzip
        # compressions of artifacts, which would otherwise delay live lines by seconds.
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="livelog-read")
        self.port = 0
        self.scheme = "http"

    async def start(self, port: int, *, certificate: str = "", key: str = "", host: str = "") -> None:
        """Listen on `port` (0: any free port) on all interfaces, or on `host` when given.

        HTTPS when `certificate` and `key` (PEM files) are given. Raises OSError or
        ssl.SSLError when the port cannot be bound or the files cannot be loaded.
        """
        context = None
        if certificate:
            context = await asyncio.to_thread(_tls_context, certificate, key)
        sock = _listening_socket(host, port)
        app = web.Application()
        app.router.add_get("/log/{token}", self._serve, allow_head=False)
        # handler_cancellation: a reader that hangs up while waiting for more log is dropped
        # at once instead of at the next line. No access log: URLs hold the tokens.
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.SockSite(runner, sock, ssl_context=context).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = sock.getsockname()[1]
        self.scheme = "https" if context is not None else "http"
        log.info("live log: serving %s on port %d", self.scheme.upper(), self.port)

    @property
    def running(self) -> bool:
        """True between a successful `start()` and `close()`."""
        return self._runner is not None

    def register(self, task_log: TaskLog) -> str:
        """Serve `task_log` under a new unguessable token; return the token."""
        token = secrets.token_urlsafe(24)
        self._logs[token] = task_log
        return token

    def revoke(self, token: str) -> None:
        """New requests for `token` get 401 from now on (connected readers continue)."""
        self._logs.pop(token, None)

    def url(self, host: str, token: str) -> str:
        """The public URL of `token`'s log with `host` as the host name (IPv6 in brackets)."""
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}/log/{token}"

    async def close(self) -> None:
        """Stop listening and disconnect every reader."""
        for reader in list(self._readers):
            reader.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        task_log = self._logs.get(request.match_info["token"])
        if task_log is None:
            return _denied()
        loop = asyncio.get_running_loop()
        try:
            fd = await loop.run_in_executor(self._executor, _open_for_reading, str(task_log.path))
        except OSError:
            return _denied()  # the task directory is gone: nothing to serve
        reader = asyncio.current_task()
        assert reader is not None
        self._readers.add(reader)
        metrics.LIVE_LOG_READERS.inc()
        try:
            return await self._stream(request, task_log, fd)
        finally:
            metrics.LIVE_LOG_READERS.dec()
            self._readers.discard(reader)
            os.close(fd)

    async def _stream(self, request: web.Request, task_log: TaskLog, fd: int) -> web.StreamResponse:
        response = web.StreamResponse(headers=_STREAM_HEADERS)
        loop = asyncio.get_running_loop()
        offset = 0
        try:
            await response.prepare(request)
            # Ordering: wait_beyond() is True while the log holds bytes past `offset`, so a
            # line written and the log closed right after are both still sent.
            while await task_log.wait_beyond(offset):
                chunk = await loop.run_in_executor(self._executor, task_log.read_at, fd, offset, CHUNK)
                if not chunk:
                    break  # the file is shorter than the log says: it was replaced; stop
                async with asyncio.timeout(WRITE_STALL_TIMEOUT):
                    await response.write(chunk)
                offset += len(chunk)
            await response.write_eof()
        except TimeoutError:
            log.debug(
                "live log: a reader stalled for %.0fs at byte %d; disconnected", WRITE_STALL_TIMEOUT, offset
            )
            if request.transport is not None:
                request.transport.abort()
        except ConnectionError:
            pass  # the reader hung up: nothing to tell anyone
        return response


def _denied() -> web.Response:
    return web.Response(status=401, text="Access denied", headers=CORS)


def _open_for_reading(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def _tls_context(certificate: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    return context


def _listening_socket(host: str, port: int) -> socket.socket:
    """One socket for `host:port`; no host: all interfaces, IPv4 and IPv6 on the same port.

    A single dual-stack socket (rather than one per address family, as aiohttp would make)
    keeps port 0 meaning one port. Falls back to IPv4 only where IPv6 is unavailable.
    """
    if host:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        address: tuple[str, int] = (host, port)
    else:
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            address = ("::", port)
        except OSError as e:
            if e.errno not in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT, errno.EINVAL):
                raise
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = ("0.0.0.0", port)
    try:
        if sock.family == socket.AF_INET6 and not host:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
