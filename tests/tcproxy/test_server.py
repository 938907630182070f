"""The proxy over real loopback HTTP, in front of a small upstream server of this test."""

import gzip
import hashlib
import json
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from generic_worker.config import config_from_mapping
from generic_worker.tc import Credentials
from generic_worker.tcproxy import TaskclusterProxy

BIG = 20 << 20


@dataclass
class Upstream:
    """What the upstream server saw, and how it should behave."""

    url: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)
    failures_left: int = 0


def upstream_app(state: Upstream) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            size += len(chunk)
        seen = {
            "method": request.method,
            "raw_path": request.rel_url.raw_path,
            "query": request.rel_url.raw_query_string,
            "headers": dict(request.headers),
            "size": size,
            "sha256": digest.hexdigest(),
        }
        state.seen.append(seen)
        return web.json_response(seen)

    async def flaky(request: web.Request) -> web.Response:
        await request.read()
        state.seen.append({"raw_path": request.rel_url.raw_path})
        if state.failures_left > 0:
            state.failures_left -= 1
            return web.Response(status=500, text="try again")
        return web.Response(text="finally")

    async def download(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = BIG
        await response.prepare(request)
        block = b"z" * (1 << 20)
        for _ in range(BIG >> 20):
            await response.write(block)
        return response

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=303, headers={"Location": "http://elsewhere.invalid/blob"})

    async def compressed(request: web.Request) -> web.Response:
        state.seen.append({"accept": request.headers.get("Accept-Encoding")})
        body = gzip.compress(b"zipped body")
        return web.Response(body=body, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})

    async def teapot(request: web.Request) -> web.Response:
        response = web.Response(status=418, text='{"message": "no"}', content_type="application/json")
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        return response

    app = web.Application(client_max_size=64 << 20)
    app.router.add_route("*", "/api/echo/v1/{tail:.*}", echo)
    app.router.add_route("*", "/api/flaky/v1/{tail:.*}", flaky)
    app.router.add_get("/api/big/v1/download", download)
    app.router.add_get("/api/redirect/v1/x", redirect)
    app.router.add_get("/api/gzip/v1/x", compressed)
    app.router.add_get("/api/teapot/v1/x", teapot)
    return app


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    state = Upstream()
    runner = web.AppRunner(upstream_app(state), auto_decompress=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


@dataclass
class Running:
    proxy: TaskclusterProxy
    credentials: Credentials
    url: str


def make_proxy(root_url: str, credentials: Credentials) -> TaskclusterProxy:
    config, _ = config_from_mapping(
        {
            "rootURL": root_url,
            "accessToken": "a",
            "clientId": "c",
            "workerId": "w",
            "workerType": "t",
            "publicIP": "127.0.0.1",
            "subdomain": "",
        }
    )
    return TaskclusterProxy(config, lambda: credentials, ["queue:get-task:*"])


@pytest.fixture
async def proxy(upstream: Upstream) -> AsyncIterator[Running]:
    credentials: Credentials = {"clientId": "task-client/one", "accessToken": "token-one"}
    running = make_proxy(upstream.url, credentials)
    await running.start(0)
    yield Running(running, credentials, running.url)
    await running.close()


def hawk_id(headers: dict[str, str]) -> str:
    match = re.search(r'id="([^"]*)"', headers["Authorization"])
    assert match is not None
    return match[1]


async def test_both_url_forms_are_forwarded_signed_with_the_current_credentials(
    proxy: Running, upstream: Upstream
):
    async with aiohttp.ClientSession() as session:
        for path in ("/api/echo/v1/task/a%2Fb", "/echo/v1/task/a%2Fb"):
            async with session.get(proxy.url + path + "?x=1&y=a%20b") as response:
                assert response.status == 200
                seen = await response.json()
                assert (
                    response.headers["X-Taskcluster-Endpoint"]
                    == f"{upstream.url}/api/echo/v1/task/a%2Fb?x=1&y=a%20b"
                )
                assert response.headers["X-Taskcluster-Proxy-Perm-ClientId"] == "task-client/one"
                assert json.loads(response.headers["X-Taskcluster-Authorized-Scopes"]) == ["queue:get-task:*"]
            assert seen["raw_path"] == "/api/echo/v1/task/a%2Fb"
            assert seen["query"] == "x=1&y=a%20b"
            assert hawk_id(seen["headers"]) == "task-client/one"
        # a reclaim replaces the credentials: the next request is signed with the new ones
        proxy.credentials["clientId"] = "task-client/two"
        proxy.credentials["accessToken"] = "token-two"
        proxy.credentials["certificate"] = json.dumps({"version": 1, "scopes": ["s:1"]})
        async with session.get(proxy.url + "/api/echo/v1/again") as response:
            seen = await response.json()
            assert response.headers["X-Taskcluster-Proxy-Temp-ClientId"] == "task-client/two"
            assert json.loads(response.headers["X-Taskcluster-Proxy-Temp-Scopes"]) == ["s:1"]
        assert hawk_id(seen["headers"]) == "task-client/two"


async def test_bodies_stream_both_ways(proxy: Running, upstream: Upstream):
    payload = bytes(range(256)) * (12 << 12)  # 12 MiB

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 1 << 20):
            yield payload[i : i + (1 << 20)]

    async with aiohttp.ClientSession() as session:
        async with session.post(proxy.url + "/api/echo/v1/upload", data=chunks()) as response:
            seen = await response.json()
        assert (seen["size"], seen["sha256"]) == (len(payload), hashlib.sha256(payload).hexdigest())
        small = b'{"a": 1}'
        headers = {"Content-Type": "application/json"}
        async with session.put(proxy.url + "/api/echo/v1/small", data=small, headers=headers) as response:
            seen = await response.json()
        assert seen["size"] == len(small) and seen["method"] == "PUT"
        assert seen["headers"]["Content-Type"] == "application/json"
        async with session.get(proxy.url + "/api/big/v1/download") as response:
            assert response.headers["Content-Length"] == str(BIG)
            received = 0
            async for chunk in response.content.iter_any():
                received += len(chunk)
        assert received == BIG


async def test_responses_pass_through_as_they_are(proxy: Running, upstream: Upstream):
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(proxy.url + "/api/redirect/v1/x", allow_redirects=False) as response:
            assert response.status == 303  # not followed
            assert response.headers["Location"] == "http://elsewhere.invalid/blob"
        async with session.head(proxy.url + "/api/echo/v1/x") as response:
            assert response.status == 200
            assert int(response.headers["Content-Length"]) > 0  # the length a GET would have
            assert await response.read() == b""
        async with session.get(proxy.url + "/api/teapot/v1/x") as response:
            assert response.status == 418
            assert await response.json() == {"message": "no"}
            assert response.headers.getall("Set-Cookie") == ["a=1", "b=2"]
        async with session.get(proxy.url + "/api/gzip/v1/x", headers={"Accept-Encoding": "gzip"}) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(await response.read()) == b"zipped body"  # relayed undecoded
    async with aiohttp.ClientSession(skip_auto_headers=["Accept-Encoding"]) as session:
        async with session.get(proxy.url + "/api/gzip/v1/x") as response:
            await response.read()
    assert [s["accept"] for s in upstream.seen if "accept" in s] == [
        "gzip",
        "identity",
    ]  # never offered for the task


async def test_small_requests_are_retried_on_5xx_streamed_ones_are_not(proxy: Running, upstream: Upstream):
    async with aiohttp.ClientSession() as session:
        upstream.failures_left = 2
        async with session.post(proxy.url + "/api/flaky/v1/x", data=b"small") as response:
            assert (response.status, await response.text()) == (200, "finally")
        assert len(upstream.seen) == 3
        upstream.seen.clear()
        upstream.failures_left = 1

        async def chunks() -> AsyncIterator[bytes]:
            yield b"streamed"

        async with session.post(proxy.url + "/api/flaky/v1/x", data=chunks()) as response:
            assert (response.status, await response.text()) == (500, "try again")
        assert len(upstream.seen) == 1


async def test_proxy_endpoints(proxy: Running):
    async with aiohttp.ClientSession() as session:
        async with session.put(proxy.url + "/credentials", json=dict(proxy.credentials)) as response:
            assert response.status == 403
            assert "cannot replace them" in await response.text()
        async with session.get(proxy.url + "/credentials") as response:
            assert response.status == 405
        target = "https://tc.example.com/api/queue/v1/task/abc/artifacts/private%2Fx"
        async with session.post(proxy.url + "/bewit", data=target, allow_redirects=False) as response:
            assert response.status == 303
            location = response.headers["Location"]
            assert location.startswith(target + "?bewit=")
            assert await response.text() == location
        async with session.post(proxy.url + "/bewit", data="not a url", allow_redirects=False) as response:
            assert response.status == 400
        for path in ("/", "/no_such!/v1/x", "/api/queue"):
            async with session.get(proxy.url + path) as response:
                assert response.status == 404
                assert "Unknown taskcluster service" in await response.text()


async def test_unreachable_upstream_is_502():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        root = f"http://127.0.0.1:{closed.getsockname()[1]}"  # bound, never listening: refused
        running = make_proxy(root, {"clientId": "c", "accessToken": "t"})
        await running.start(0)
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(running.url + "/api/queue/v1/ping") as response,
            ):
                assert response.status == 502
                assert "Failed during proxy request" in await response.text()
        finally:
            await running.close()


async def test_port_choice_and_closing():
    credentials: Credentials = {"clientId": "c", "accessToken": "t"}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        alone = make_proxy("http://127.0.0.1:1", credentials)
        with pytest.raises(OSError):
            await alone.start(port)  # one port only (capacity 1): it must be that one
        first, second = (
            make_proxy("http://127.0.0.1:1", credentials),
            make_proxy("http://127.0.0.1:1", credentials),
        )
        try:
            # The first free ports after it (another process may hold one of them meanwhile).
            taken = await first.start(port, tries=8)
            assert port < taken <= port + 8
            assert taken < await second.start(port, tries=8) <= port + 8
        finally:
            await first.close()
            await second.close()
    with pytest.raises(aiohttp.ClientConnectorError):
        async with aiohttp.ClientSession() as session, session.get(f"{first.url}/api/queue/v1/ping"):
            pass
