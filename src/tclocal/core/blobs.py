"""tc-local's S3 stand-in: a folder of blobs behind signed, expiring PUT/GET URLs.

A blob is addressed by a key (`artifacts/<taskId>/<runId>/<name>`, `objects/<name>`). Its bytes
live in `<root>/<hh>/<sha256(key)>` and the headers it was uploaded with (Content-Type,
Content-Encoding, Content-Length) in a `.meta` file beside it; a GET serves them back exactly,
as S3 does (so a gzip-encoded log comes back with `Content-Encoding: gzip`). Bodies stream to
and from disk in bounded chunks on worker threads (never on the event loop), so a 2 GiB
artifact needs no more memory than a small one. URLs carry `expires` and an HMAC over the
method, key and expiry; a PUT URL cannot be used to read, nor a GET URL to write.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import urllib.parse
from pathlib import Path
from typing import Any, BinaryIO

from aiohttp import web

from tclocal.core.timestamps import now

ROUTE_PREFIX = "/blobs/"
CHUNK = 1 << 20
SMALL_BODY = 1 << 20


class BlobStore:
    """Signed URLs and streaming storage for artifact and object bodies."""

    def __init__(self, root: Path, secret: str) -> None:
        self.root = root
        self._secret = secret.encode()
        self.base_url = ""

    def _signature(self, method: str, key: str, expires: int) -> str:
        text = f"{method}\n{key}\n{expires}".encode()
        return hmac.new(self._secret, text, hashlib.sha256).hexdigest()

    def signed_url(self, key: str, method: str, expires_in: float) -> tuple[str, float]:
        """A URL allowing `method` (PUT or GET) on `key` until now+expires_in; and that expiry."""
        expires = int(now() + expires_in)
        query = urllib.parse.urlencode(
            {"expires": expires, "signature": self._signature(method, key, expires)}
        )
        path = urllib.parse.quote(key, safe="/")
        return f"{self.base_url}{ROUTE_PREFIX}{path}?{query}", float(expires)

    def _paths(self, key: str) -> tuple[Path, Path]:
        digest = hashlib.sha256(key.encode()).hexdigest()
        folder = self.root / digest[:2]
        return folder / digest, folder / f"{digest}.meta"

    def _verified_key(self, request: web.Request, method: str) -> str:
        raw = request.raw_path.split("?", 1)[0][len(ROUTE_PREFIX) :]
        key = urllib.parse.unquote(raw)
        try:
            expires = int(request.query.get("expires", ""))
        except ValueError as err:
            raise web.HTTPForbidden(text="missing or bad expires") from err
        given = request.query.get("signature", "")
        if not hmac.compare_digest(given, self._signature(method, key, expires)):
            raise web.HTTPForbidden(text="signature does not match")
        if expires < now():
            raise web.HTTPForbidden(text="URL has expired")
        return key

    def _commit(self, key: str, tmp: Path, meta: dict[str, Any]) -> None:
        data_path, meta_path = self._paths(key)
        meta_tmp = tmp.with_suffix(".metatmp")
        meta_tmp.write_text(json.dumps({"key": key, **meta}))
        os.replace(tmp, data_path)
        os.replace(meta_tmp, meta_path)

    def _temp(self, key: str) -> Path:
        data_path, _ = self._paths(key)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        return data_path.with_name(f".{data_path.name}.{secrets.token_hex(4)}.tmp")

    def _write_all(self, key: str, data: bytes, meta: dict[str, Any]) -> None:
        tmp = self._temp(key)
        tmp.write_bytes(data)
        self._commit(key, tmp, meta)

    async def store_bytes(self, key: str, data: bytes, content_type: str) -> None:
        """Store a small body directly (object service `dataInline` uploads)."""
        meta = {"contentType": content_type, "contentLength": len(data)}
        await asyncio.to_thread(self._write_all, key, data, meta)

    def _delete(self, keys: list[str]) -> None:
        for key in keys:
            for path in self._paths(key):
                path.unlink(missing_ok=True)

    async def delete(self, keys: list[str]) -> None:
        """Delete the bodies (and stored headers) of the given blobs, if present."""
        if keys:
            await asyncio.to_thread(self._delete, keys)

    def _read_meta(self, key: str) -> dict[str, Any] | None:
        data_path, meta_path = self._paths(key)
        try:
            meta: dict[str, Any] = json.loads(meta_path.read_text())
        except FileNotFoundError:
            return None
        meta["path"] = str(data_path)
        return meta

    async def metadata(self, key: str) -> dict[str, Any] | None:
        """The stored headers of a blob (and its file path), or None when it was never uploaded."""
        return await asyncio.to_thread(self._read_meta, key)

    @staticmethod
    def _headers_meta(request: web.Request, size: int) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "contentType": request.headers.get("Content-Type", "application/octet-stream"),
            "contentLength": size,
        }
        if "Content-Encoding" in request.headers:
            meta["contentEncoding"] = request.headers["Content-Encoding"]
        return meta

    async def handle_put(self, request: web.Request) -> web.StreamResponse:
        """PUT <signed url>: store the body with its headers, streaming to disk."""
        key = self._verified_key(request, "PUT")
        declared = request.content_length
        if declared is not None and declared <= SMALL_BODY:
            data = await request.read()
            if len(data) != declared:
                raise web.HTTPBadRequest(text="body shorter than Content-Length")
            await asyncio.to_thread(self._write_all, key, data, self._headers_meta(request, declared))
            return web.Response(status=200)
        tmp = await asyncio.to_thread(self._temp, key)
        size = 0
        handle: BinaryIO = await asyncio.to_thread(open, tmp, "wb")  # noqa: ASYNC230
        try:
            buffer = bytearray()
            async for chunk in request.content.iter_chunked(CHUNK):
                buffer += chunk
                if len(buffer) >= CHUNK:
                    await asyncio.to_thread(handle.write, bytes(buffer))
                    size += len(buffer)
                    buffer.clear()
            await asyncio.to_thread(handle.write, bytes(buffer))
            size += len(buffer)
        except BaseException:
            await asyncio.to_thread(handle.close)
            await asyncio.to_thread(tmp.unlink, True)
            raise
        await asyncio.to_thread(handle.close)
        if declared is not None and size != declared:
            await asyncio.to_thread(tmp.unlink, True)
            raise web.HTTPBadRequest(text="body length differs from Content-Length")
        await asyncio.to_thread(self._commit, key, tmp, self._headers_meta(request, size))
        return web.Response(status=200)

    async def handle_get(self, request: web.Request) -> web.StreamResponse:
        """GET <signed url>: serve the body with the headers it was stored with (sendfile)."""
        key = self._verified_key(request, "GET")
        meta = await self.metadata(key)
        if meta is None:
            raise web.HTTPNotFound(text=f"no blob {key}")
        headers = {"Content-Type": meta["contentType"]}
        if "contentEncoding" in meta:
            headers["Content-Encoding"] = meta["contentEncoding"]
        return web.FileResponse(meta["path"], headers=headers, chunk_size=256 * 1024)

    def routes(self) -> list[web.RouteDef]:
        """The aiohttp routes serving blob URLs."""
        return [
            web.put(ROUTE_PREFIX + "{tail:.*}", self.handle_put),
            web.get(ROUTE_PREFIX + "{tail:.*}", self.handle_get),
        ]
