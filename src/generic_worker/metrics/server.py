"""The /metrics endpoint: Prometheus' text format over aiohttp, on the worker's event loop.

Listens on `metricsAddress:metricsPort` (loopback by default: the figures say what the worker is
doing, which an operator may not want public). Rendering is quick and happens per scrape; free
disk space is measured then (a statvfs call per directory, in a thread).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from generic_worker.metrics.registry import FREE_DISK, REGISTRY


class MetricsServer:
    """Serves GET /metrics; `port` is the bound port once started (useful with port 0 in tests)."""

    def __init__(self, address: str, port: int, disk_dirs: dict[str, Path]) -> None:
        self.address = address
        self.port = port
        self._disk_dirs = disk_dirs
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Start listening."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.address, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        for name, path in self._disk_dirs.items():
            free = await asyncio.to_thread(_free_bytes, path)
            if free is not None:
                FREE_DISK.labels(name).set(free)
        body = await asyncio.to_thread(generate_latest, REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _free_bytes(path: Path) -> int | None:
    """Free bytes on the file system of `path` (or its nearest existing parent)."""
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None
