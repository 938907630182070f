"""The live log server over real loopback HTTP, fed by a real task log file."""

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from generic_worker.engine.tasklog import TaskLog
from generic_worker.livelog import LiveLogServer
from tests.livelog.reading import assert_live_log_response, read_until


@pytest.fixture
async def server() -> AsyncIterator[LiveLogServer]:
    live = LiveLogServer()
    await live.start(0, host="127.0.0.1")
    yield live
    await live.close()


async def test_streams_from_the_first_byte_and_follows_until_the_log_closes(
    server: LiveLogServer, tmp_path: Path
):
    log = TaskLog(tmp_path / "live_backing.log")
    log.write(b"written before anyone listened\n")
    token = server.register(log)
    url = server.url("127.0.0.1", token)
    received = bytearray()
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert_live_log_response(response)
        await read_until(response, received, b"listened\n")

        # written from another thread, as the process pumps do
        def write_lines() -> None:
            for i in range(1000):
                log.write(f"line {i}\n".encode())

        writer = threading.Thread(target=write_lines)
        writer.start()
        await read_until(response, received, b"line 999\n")
        writer.join()
        log.info("the end")
        log.close()
        async with asyncio.timeout(10):
            received += await response.content.read()
    assert bytes(received) == log.path.read_bytes()


async def test_a_revoked_token_serves_connected_readers_to_the_end_and_refuses_new_ones(
    server: LiveLogServer, tmp_path: Path
):
    log = TaskLog(tmp_path / "log")
    token = server.register(log)
    url = server.url("127.0.0.1", token)
    received = bytearray()
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as connected:
            log.write(b"before\n")
            await read_until(connected, received, b"before\n")
            server.revoke(token)
            async with session.get(url) as refused:
                assert refused.status == 401
                assert await refused.text() == "Access denied"
            log.write(b"after\n")
            log.close()
            async with asyncio.timeout(10):
                received += await connected.content.read()
        assert bytes(received) == b"before\nafter\n"
        async with session.head(url) as head:
            assert head.status == 405  # only GET: a HEAD would otherwise hold on to the end of the log
        async with session.get(server.url("127.0.0.1", "no-such-token")) as unknown:
            assert unknown.status == 401
            assert await unknown.text() == "Access denied"


async def test_readers_that_hang_up_are_dropped_quietly(
    server: LiveLogServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    log = TaskLog(tmp_path / "log")
    log.write(b"x" * (4 << 20))
    token = server.register(log)
    for _ in range(5):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(f"GET /log/{token} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert await reader.readexactly(12) == b"HTTP/1.1 200"
        await reader.readexactly(100_000)  # mid-stream...
        writer.transport.abort()  # ...it hangs up
    log.write(b"\nmore\n")
    async with aiohttp.ClientSession() as session, session.get(server.url("127.0.0.1", token)) as response:
        received = bytearray()
        await read_until(response, received, b"\nmore\n")
    log.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_close_disconnects_waiting_readers(tmp_path: Path):
    live = LiveLogServer()
    await live.start(0, host="127.0.0.1")
    log = TaskLog(tmp_path / "log")
    url = live.url("127.0.0.1", live.register(log))
    log.write(b"hello\n")
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        received = bytearray()
        await read_until(response, received, b"hello\n")
        async with asyncio.timeout(5):
            await live.close()
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.content.read()
    assert not live.running
    log.close()


async def test_an_address_in_use_is_an_os_error(server: LiveLogServer):
    other = LiveLogServer()
    with pytest.raises(OSError):
        await other.start(server.port, host="127.0.0.1")
    assert not other.running
    await other.close()


def test_urls():
    live = LiveLogServer()
    live.port = 60023
    assert live.url("10.0.0.1", "tok") == "http://10.0.0.1:60023/log/tok"
    assert live.url("2001:db8::1", "tok") == "http://[2001:db8::1]:60023/log/tok"
    live.scheme = "https"
    assert live.url("abc.taskcluster-worker.net", "tok") == "https://abc.taskcluster-worker.net:60023/log/tok"
