"""Reading a task log for the web view: a stored blob (gzip or not), or a worker's live stream.

Both are read in bounded chunks and split into lines as they arrive, so a log of any size costs
constant memory; each line is rendered (escaped, ANSI colours as spans, a linkable number).
"""

from __future__ import annotations

import asyncio
import codecs
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import aiohttp

from tclocal.web.ansi import AnsiRenderer

CHUNK = 256 * 1024
MAX_LINE = 64 * 1024
"""A longer line is shown in pieces of this many characters (a runaway line stays bounded)."""


async def _blob_chunks(path: Path, gzipped: bool) -> AsyncIterator[bytes]:
    handle: BinaryIO = await asyncio.to_thread(open, path, "rb")  # noqa: ASYNC230
    inflate = zlib.decompressobj(wbits=31) if gzipped else None
    try:
        while True:
            data = await asyncio.to_thread(handle.read, CHUNK)
            if not data:
                break
            yield inflate.decompress(data) if inflate else data
        if inflate:
            yield inflate.flush()
    finally:
        await asyncio.to_thread(handle.close)


async def _stream_chunks(session: aiohttp.ClientSession, url: str) -> AsyncIterator[bytes]:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as response:
        if response.status != 200:
            return
        async for chunk in response.content.iter_any():
            yield chunk


async def lines_of(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """Decode (UTF-8, bad bytes replaced) and split into lines as the chunks arrive."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending = ""
    async for chunk in chunks:
        pending += decoder.decode(chunk)
        *complete, pending = pending.split("\n")
        for line in complete:
            yield line
        while len(pending) > MAX_LINE:
            yield pending[:MAX_LINE]
            pending = pending[MAX_LINE:]
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


def numbered(number: int, html_line: str) -> str:
    """One rendered log line, with its number as a link to itself (`#L<n>`)."""
    return f'<span class="line" id="L{number}"><a class="ln" href="#L{number}">{number}</a>{html_line}</span>'


async def rendered(chunks: AsyncIterator[bytes], first: int = 1) -> AsyncIterator[str]:
    """Numbered HTML lines (each ending with a newline) from a log's bytes."""
    renderer = AnsiRenderer()
    number = first
    async for line in lines_of(chunks):
        yield numbered(number, renderer.line(line.rstrip("\r"))) + "\n"
        number += 1


def blob_lines(path: Path, gzipped: bool) -> AsyncIterator[str]:
    """The rendered lines of a stored log."""
    return rendered(_blob_chunks(path, gzipped))


def live_lines(session: aiohttp.ClientSession, url: str) -> AsyncIterator[str]:
    """The rendered lines of a live log, following it until the worker closes it."""
    return rendered(_stream_chunks(session, url))
