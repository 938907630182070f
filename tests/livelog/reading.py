"""Reading a live log stream in tests: up to a marker, with a deadline."""

import asyncio

import aiohttp


async def read_until(
    response: aiohttp.ClientResponse, received: bytearray, marker: bytes, timeout: float = 30
) -> None:
    """Append what the stream sends to `received` until it holds `marker`; fail if it ends first."""
    async with asyncio.timeout(timeout):
        while marker not in received:
            chunk = await response.content.readany()
            assert chunk, f"stream ended before {marker!r}"
            received += chunk


def assert_live_log_response(response: aiohttp.ClientResponse) -> None:
    """A live log answer: 200, plain UTF-8 text, readable from any origin."""
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
