"""A small superseder service on loopback: answers `{"supersedes": [...]}` and records the queries."""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web


@dataclass
class Superseder:
    """A superseder service: answers every request with `status` and `body`, and records the queries."""

    url: str = ""
    status: int = 200
    body: bytes = b'{"supersedes": []}'
    queries: list[dict[str, str]] = field(default_factory=list)

    def answer(self, supersedes: list[str]) -> None:
        self.body = json.dumps({"supersedes": supersedes}).encode()


@pytest.fixture
async def superseder() -> AsyncIterator[Superseder]:
    service = Superseder()

    async def handle(request: web.Request) -> web.Response:
        service.queries.append(dict(request.query))
        return web.Response(status=service.status, body=service.body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/supersedes", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    service.url = f"http://127.0.0.1:{runner.addresses[0][1]}/supersedes"
    yield service
    await runner.cleanup()
