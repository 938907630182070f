"""Downloads against a loopback server, and purge-cache requests against the real tc-local."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
import taskcluster.aio

from generic_worker.mounts.diskspace import MIB, Budget
from generic_worker.mounts.download import MAX_ATTEMPTS, download, new_session
from generic_worker.mounts.errors import MountError
from generic_worker.mounts.purge import PurgeRequests
from generic_worker.timefmt import now
from tclocal.testing import RunningTCLocal, unique_worker_type

from .content import content_server
from .test_stores import Lines


def budget(tmp_path: Path, nbytes: int = 1 << 40) -> Budget:
    return Budget(nbytes, None, 0, tmp_path)


async def test_download_retries_5xx_and_hashes(tmp_path: Path):
    data = bytes(range(256)) * 40_000
    retries: list[str] = []
    async with content_server() as server, new_session() as session:
        url = server.add("blob", data)
        server.fail_first["blob"] = 2

        async def where() -> str:
            return url

        result = await download(session, where, tmp_path / "f", budget(tmp_path), retries.append)
    assert result.size == len(data) and result.sha256 == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "f").read_bytes() == data
    assert retries == [f"HTTP 500 Internal Server Error from {url}"] * 2


async def test_download_gives_up(tmp_path: Path):
    async with content_server() as server, new_session() as session:
        missing = server.add("missing", b"")
        del server.files["missing"]
        server.fail_first["flaky"] = MAX_ATTEMPTS
        flaky = server.add("flaky", b"x")

        async def url_of(u: str) -> str:
            return u

        with pytest.raises(MountError, match="HTTP 404 Not Found from"):
            await download(session, lambda: url_of(missing), tmp_path / "a", budget(tmp_path), print)
        assert server.hits["missing"] == 1  # a 4xx is final
        with pytest.raises(MountError, match=f"giving up after {MAX_ATTEMPTS} attempts: HTTP 500"):
            await download(session, lambda: url_of(flaky), tmp_path / "b", budget(tmp_path), lambda _: None)


async def test_download_stops_at_the_budget(tmp_path: Path):
    async with content_server() as server, new_session() as session:
        url = server.add("big", bytes(20 * MIB))

        async def where() -> str:
            return url

        small = budget(tmp_path, 9 * MIB)
        with pytest.raises(MountError, match="would leave less than requiredDiskSpaceMegabytes"):
            await download(session, where, tmp_path / "f", small, print)
    assert (tmp_path / "f").stat().st_size <= 9 * MIB


async def test_download_survives_a_connection_cut(tmp_path: Path):
    """A server that dies mid-body: the attempt is retried (here against a second, healthy URL)."""
    data = bytes(8 * MIB)
    attempts: list[str] = []
    async with content_server() as server, new_session() as session:
        good = server.add("good", data)

        async def cut(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
            response = aiohttp.web.StreamResponse(headers={"Content-Length": str(len(data))})
            await response.prepare(request)
            await response.write(data[:MIB])
            assert request.transport is not None
            request.transport.close()
            return response

        app = aiohttp.web.Application()
        app.router.add_get("/", cut)
        runner = aiohttp.web.AppRunner(app)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        urls = iter([f"http://127.0.0.1:{port}/", good])

        async def where() -> str:
            return next(urls)

        try:
            result = await download(session, where, tmp_path / "f", budget(tmp_path), attempts.append)
        finally:
            await runner.cleanup()
    assert result.size == len(data) and len(attempts) == 1


async def test_purge_requests(tclocal: RunningTCLocal):
    pool = f"tc-local/{unique_worker_type('purge')}"
    log = Lines()
    async with aiohttp.ClientSession() as session:
        admin = taskcluster.aio.PurgeCache(tclocal.options(), session=session)
        requests = PurgeRequests(lambda: taskcluster.aio.PurgeCache(tclocal.options(), session=session), pool)
        assert requests.due(False)
        assert await requests.fetch(log) == []
        assert not requests.due(False) and requests.due(True)
        await admin.purgeCache(pool, {"cacheName": "apple"})
        (found,) = await requests.fetch(log)
        assert found[0] == "apple" and abs(found[1] - now()) < timedelta(minutes=1)
        assert await requests.fetch(log) == []  # already applied: not again
        requests.last_query = now() - timedelta(hours=7)
        assert requests.due(False)
        broken = PurgeRequests(
            lambda: taskcluster.aio.PurgeCache(
                {"rootUrl": "http://127.0.0.1:9", "maxRetries": 0}, session=session
            ),
            pool,
        )
        assert await broken.fetch(log) == []
    assert log.lines[0] == "[mounts] Could not reach purgecache service to see if caches need purging:"
    assert log.lines[1].startswith("[mounts] ")
