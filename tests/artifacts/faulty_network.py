"""A fake of the network between the uploader and tc-local: a reverse proxy that can misbehave.

The uploader talks to the proxy as if it were tc-local (its root URL); the proxy forwards every
request unchanged (keeping the Host header, so Hawk signatures still match) and rewrites
tc-local's own URLs in JSON answers (presigned PUT URLs) to point back through itself. Faults
are injected by rules: answer 500/400 instead of forwarding, delay, or cut the connection
after part of the request body was received. Nothing of our code is faked.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from yarl import URL

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Fault:
    """Misbehave on the next `times` requests that `matches` (by method and raw path)."""

    matches: Callable[[str, str], bool]
    action: str  # "status:<code>", "cut:<bytes>" or "delay:<seconds>"
    times: int = 1_000_000
    hits: int = 0


@dataclass
class Seen:
    """What went through the proxy."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: dict[str, int] = field(default_factory=dict)

    def count(self, method: str, fragment: str) -> int:
        """How many requests with `method` had `fragment` in their raw path."""
        return sum(1 for m, path in self.requests if m == method and fragment in path)


def is_blob_put(method: str, path: str) -> bool:
    """A PUT of artifact or object bytes to tc-local's blob store."""
    return method == "PUT" and path.startswith("/blobs/")


def is_create_artifact(method: str, path: str) -> bool:
    """A queue createArtifact call."""
    return method == "POST" and "/api/queue/v1/task/" in path and "/artifacts/" in path


class FaultyProxy:
    """The proxy; `url` is its root URL, `faults` the active rules, `seen` the traffic log."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.url = ""
        self.faults: list[Fault] = []
        self.seen = Seen()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._flights: dict[str, int] = {}

    async def start(self) -> None:
        app = web.Application(client_max_size=1 << 40)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # auto_decompress off: a gzip-encoded PUT body must pass through untouched.
        self._runner = web.AppRunner(app, auto_decompress=False, access_log=None)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._session = aiohttp.ClientSession(auto_decompress=False)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def add(self, matches: Callable[[str, str], bool], action: str, times: int = 1_000_000) -> Fault:
        fault = Fault(matches, action, times)
        self.faults.append(fault)
        return fault

    def _fault_for(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.hits < fault.times and fault.matches(method, path):
                fault.hits += 1
                return fault
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method, request.raw_path
        self.seen.requests.append((method, path))
        kind = "blob-put" if is_blob_put(method, path) else "api"
        self._flights[kind] = self._flights.get(kind, 0) + 1
        self.seen.max_in_flight[kind] = max(self.seen.max_in_flight.get(kind, 0), self._flights[kind])
        try:
            fault = self._fault_for(method, path)
            if fault is not None:
                verb, _, argument = fault.action.partition(":")
                if verb == "status":
                    await request.read()
                    return web.json_response({"message": "injected fault"}, status=int(argument))
                if verb == "cut":
                    await request.content.readexactly(min(int(argument), request.content_length or 0))
                    assert request.transport is not None
                    request.transport.abort()
                    raise ConnectionResetError("injected: connection cut")
                if verb == "delay":
                    await asyncio.sleep(float(argument))
            return await self._forward(request)
        finally:
            self._flights[kind] -= 1

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        headers["Host"] = request.host
        body = None
        if request.body_exists:
            headers["Content-Length"] = str(request.content_length or 0)
            body = request.content.iter_chunked(1 << 20)
        url = URL(self.upstream + request.raw_path, encoded=True)
        async with self._session.request(
            request.method,
            url,
            headers=headers,
            data=body,
            allow_redirects=False,
            # Forward exactly the client's headers: an added Content-Type breaks Hawk's payload hash.
            skip_auto_headers=[aiohttp.hdrs.CONTENT_TYPE],
        ) as upstream:
            payload = await upstream.read()
            if upstream.content_type == "application/json":
                payload = payload.replace(self.upstream.encode(), self.url.encode())
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
            if "Location" in out:
                out["Location"] = out["Location"].replace(self.upstream, self.url)
            return web.Response(status=upstream.status, body=payload, headers=out)
