"""The Taskcluster proxy of one task: an HTTP server on loopback that signs what it forwards.

Requests to `/api/<service>/<version>/...` (or the legacy `/<service>/<version>/...`) are
forwarded to Taskcluster (see `routes`) with a Hawk `Authorization` made from the CURRENT task
credentials, read from a callable at every request so that reclaims are picked up at once,
and `authorizedScopes` = the task's scopes. Bodies are streamed both ways; status and headers
come back as they are; redirects are passed back, never followed. Small requests (bodies up
to `RETRY_BODY_LIMIT`) are retried on connection errors and 5xx, as upstream's proxy does;
larger streamed bodies go once.

`POST /bewit` with a URL as the body answers 303 with that URL signed by a bewit valid for an
hour. `PUT /credentials` is refused: the worker itself keeps the credentials current.

With `allowed_uid` (the multiuser engine: the task user's uid) every connection is checked
before its first request is served: the client socket's owner is looked up in /proc/net/tcp
(`peers`), and a connection from any other uid, root included, gets 403 and nothing is signed
or forwarded. The verdict is kept per connection, so keep-alive requests are checked once.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from generic_worker import __version__
from generic_worker.config import Config
from generic_worker.tc import Credentials
from generic_worker.tcproxy.peers import PeerNotFound, peer_uid
from generic_worker.tcproxy.routes import UnknownEndpoint, target_url
from generic_worker.tcproxy.signing import HawkSigner

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
RETRY_BODY_LIMIT = 1 << 20
"""Request bodies up to this size are buffered, so the request can be retried."""

MAX_ATTEMPTS = 5
BEWIT_LIFETIME = 3600
MAX_BEWIT_BODY = 64 * 1024
STREAM_CHUNK = 64 * 1024
MAX_ERROR_TEXT = 1000
CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30)
"""No overall limit: downloads through the proxy may be long (maxRunTime bounds the task)."""

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "authorization",
    }
)
"""Headers not copied either way (hop-by-hop, or set by the proxy and aiohttp themselves)."""

CREDENTIALS_REFUSED = (
    "The worker refreshes this proxy's credentials itself after every reclaim; tasks cannot replace them.\n"
)


class TaskclusterProxy:
    """One task's proxy; `start()` binds it, `close()` takes it down."""

    def __init__(
        self,
        config: Config,
        credentials: Callable[[], Credentials],
        authorized_scopes: Sequence[str],
        *,
        allowed_uid: int | None = None,
    ) -> None:
        self._config = config
        self._credentials = credentials
        self._scopes = list(authorized_scopes)
        self._allowed_uid = allowed_uid
        self._refusals: weakref.WeakKeyDictionary[asyncio.BaseTransport, str | None] = (
            weakref.WeakKeyDictionary()
        )
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0
        self.host = LOOPBACK

    async def start(self, port: int, *, tries: int = 1, host: str = LOOPBACK) -> int:
        """Listen on `host` (default 127.0.0.1): `port` (0: any free port), or the first free of `tries`.

        Returns the port. Raises OSError when no port could be bound. d2g binds a per-task docker
        network's gateway, so that only that task's container (and the host) can reach it.
        """
        sock = _bind_loopback(port, tries, host)
        self.host = host
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # handler_cancellation: a task that hangs up stops its upstream request too.
        # auto_decompress off: request bodies are forwarded exactly as the task sent them.
        runner = web.AppRunner(
            app, handler_cancellation=True, auto_decompress=False, access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        # Responses are relayed exactly as received: never decompressed, never redirected.
        self._session = aiohttp.ClientSession(auto_decompress=False, timeout=CLIENT_TIMEOUT)
        self.port = sock.getsockname()[1]
        return self.port

    @property
    def url(self) -> str:
        """`http://<host>:<port>`, the task's TASKCLUSTER_PROXY_URL."""
        return f"http://{self.host}:{self.port}"

    async def close(self) -> None:
        """Stop listening, end requests in flight, close upstream connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---- dispatch ------------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if self._allowed_uid is not None:
            refusal = await self._refusal(request)
            if refusal is not None:
                # No X-Taskcluster-* headers: they would tell another user whose proxy this is.
                return web.Response(status=403, text=refusal)
        raw_path = request.rel_url.raw_path
        if raw_path.startswith("/bewit"):
            return await self._bewit(request)
        if raw_path.startswith("/credentials"):
            if request.method != "PUT":
                return self._text(405, "Method not allowed\n")
            return self._text(403, CREDENTIALS_REFUSED)
        try:
            target = target_url(self._config, raw_path, request.rel_url.raw_query_string)
        except UnknownEndpoint as e:
            return self._text(404, f"Unknown taskcluster service: {e}\n")
        log.debug("taskcluster proxy: %s %s", request.method, target)
        return await self._forward(request, target)

    async def _refusal(self, request: web.Request) -> str | None:
        """Why this request's connection is refused (None: it comes from the task user)."""
        transport = request.transport
        if transport is None:
            return "Taskcluster proxy: the connection is gone\n"
        if transport in self._refusals:
            return self._refusals[transport]
        peer = transport.get_extra_info("peername")
        ours = transport.get_extra_info("sockname")
        try:
            uid = await asyncio.to_thread(peer_uid, peer, ours)
        except (PeerNotFound, TypeError, ValueError) as e:
            verdict: str | None = f"Taskcluster proxy: connection refused: its owner is unknown ({e})\n"
        else:
            verdict = None
            if uid != self._allowed_uid:
                verdict = (
                    f"Taskcluster proxy: connection refused: this proxy serves only the processes of "
                    f"its task's user (uid {self._allowed_uid}), not uid {uid}\n"
                )
        if verdict is not None:
            log.warning("taskcluster proxy on port %s: %s", self.port, verdict.strip())
        self._refusals[transport] = verdict
        return verdict

    def _text(self, status: int, text: str, **headers: str) -> web.Response:
        response = web.Response(status=status, text=text)
        response.headers.update(self._proxy_headers())
        response.headers.update(headers)
        return response

    def _proxy_headers(self, target: str | None = None) -> dict[str, str]:
        """Upstream's `X-Taskcluster-*` response headers: who signed, with which scopes, to where."""
        credentials = self._credentials()
        client_id = credentials.get("clientId", "")
        headers = {"X-Taskcluster-Proxy-Version": __version__}
        certificate = credentials.get("certificate")
        if certificate:
            headers["X-Taskcluster-Proxy-Temp-ClientId"] = client_id
            try:
                scopes = json.loads(certificate).get("scopes", [])
                headers["X-Taskcluster-Proxy-Temp-Scopes"] = _compact(scopes)
            except (ValueError, AttributeError):
                pass
        else:
            headers["X-Taskcluster-Proxy-Perm-ClientId"] = client_id
        headers["X-Taskcluster-Authorized-Scopes"] = _compact(self._scopes)
        if target is not None:
            headers["X-Taskcluster-Endpoint"] = target
        return headers

    def _signer(self) -> HawkSigner:
        return HawkSigner(self._credentials(), self._scopes)

    # ---- /bewit --------------------------------------------------------------------------------
    async def _bewit(self, request: web.Request) -> web.Response:
        if (request.content_length or 0) > MAX_BEWIT_BODY:
            return self._text(413, "Error creating bewit url: the URL is too long\n")
        # read() is bounded by the application's client_max_size (1 MiB) even when chunked.
        url = (await request.read()).decode("utf-8", errors="replace").strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return self._text(400, f"Error creating bewit url: not an http(s) URL: {url!r}\n")
        signed = self._signer().signed_url(url, BEWIT_LIFETIME)
        return self._text(303, signed, Location=signed)

    # ---- forwarding ----------------------------------------------------------------------------
    async def _forward(self, request: web.Request, target: str) -> web.StreamResponse:
        assert self._session is not None
        headers = _request_headers(request)
        body, retryable = await _request_body(request, headers)
        attempts = MAX_ATTEMPTS if retryable else 1
        for attempt in range(1, attempts + 1):
            headers["Authorization"] = self._signer().authorization(request.method, target)
            try:
                upstream = await self._session.request(
                    request.method,
                    URL(target, encoded=True),
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                )
            except (aiohttp.ClientError, TimeoutError) as e:
                if attempt < attempts:
                    await asyncio.sleep(_backoff(attempt))
                    continue
                why = f"{type(e).__name__}: {e}"[:MAX_ERROR_TEXT]
                return self._text(502, f"Failed during proxy request: {why}\n")
            if upstream.status >= 500 and attempt < attempts:
                upstream.release()
                await asyncio.sleep(_backoff(attempt))
                continue
            try:
                return await self._relay(request, upstream, target)
            finally:
                upstream.release()
        raise AssertionError("unreachable: the last attempt always returns")

    async def _relay(
        self, request: web.Request, upstream: aiohttp.ClientResponse, target: str
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in upstream.headers.items():
            if name.lower() not in _HOP_BY_HOP:
                response.headers.add(name, value)
        response.headers.update(self._proxy_headers(target))
        if upstream.content_length is not None and upstream.status not in (204, 304):
            response.content_length = upstream.content_length
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
        except (aiohttp.ClientError, ConnectionError) as e:
            # Too late for an error status: the headers are out. Cut the connection so the
            # task sees a truncated response rather than a complete-looking one.
            log.debug("taskcluster proxy: relaying %s broke off: %s", target, e)
            if request.transport is not None:
                request.transport.abort()
        return response


def _request_headers(request: web.Request) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in request.headers.items():
        if name.lower() not in _HOP_BY_HOP:
            headers.add(name, value)
    # Responses are relayed undecoded: never ask for an encoding the task did not ask for
    # (aiohttp would otherwise offer gzip on the task's behalf).
    headers.setdefault("Accept-Encoding", "identity")
    return headers


async def _request_body(
    request: web.Request, headers: CIMultiDict[str]
) -> tuple[bytes | AsyncIterator[bytes] | None, bool]:
    """The body to forward, and whether the request may be retried (body buffered or absent)."""
    if not request.body_exists:
        return None, True
    length = request.content_length
    if length is not None and length <= RETRY_BODY_LIMIT:
        return await request.read(), True
    if length is not None:
        headers["Content-Length"] = str(length)  # streamed as sent, not re-chunked
    return request.content.iter_chunked(STREAM_CHUNK), False


def _backoff(attempt: int) -> float:
    """The official client's backoff: 0.1 s doubling per attempt."""
    return float(0.1 * 2 ** (attempt - 1))


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _bind_loopback(port: int, tries: int, host: str = LOOPBACK) -> socket.socket:
    """A socket bound to `host`: the first free port of `port`, `port + 1`, ... (`tries` ports)."""
    candidates = [0] if port == 0 else range(port, min(port + max(tries, 1), 65536))
    error: OSError | None = None
    for candidate in candidates:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, candidate))
            sock.setblocking(False)
            return sock
        except OSError as e:
            sock.close()
            if e.errno != errno.EADDRINUSE:
                raise
            error = e
    assert error is not None
    raise error
