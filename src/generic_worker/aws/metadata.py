"""The EC2 instance metadata service (`metadataBaseURL`, default `http://169.254.169.254`).

Reads are retried with backoff on connection errors and 5xx answers (the seed used httpbackoff);
any other answer than 200 is an error, except where the caller wants the status itself (the spot
termination notice, where 404 is the normal answer).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

TIMEOUT = aiohttp.ClientTimeout(total=10, sock_connect=5)
ATTEMPTS = 4
MAX_BODY = 1 << 20
SPOT_TERMINATION_PATH = "latest/meta-data/spot/termination-time"


class MetadataError(Exception):
    """The metadata service could not be read, or did not answer 200."""


class MetadataService:
    """Reads the EC2 metadata service at `base_url` over `session`."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self.base_url = base_url.rstrip("/")

    async def text(self, path: str) -> str:
        """The body of `GET <base>/<path>` (200 only), retried on connection errors and 5xx."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        last = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(0.2 * 2**attempt)
            try:
                async with self._session.get(url, timeout=TIMEOUT) as response:
                    body = await response.content.read(MAX_BODY)
                    if response.status == 200:
                        return body.decode("utf-8", errors="replace")
                    last = f"HTTP {response.status}"
                    if response.status < 500:
                        break
            except (aiohttp.ClientError, TimeoutError) as e:
                last = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        raise MetadataError(f"could not read {url}: {last}")

    async def user_data(self) -> dict[str, Any]:
        """The instance's user-data, which the AWS provisioner writes as a JSON object."""
        text = await self.text("latest/user-data")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise MetadataError(f"user-data is not JSON: {e}") from e
        if not isinstance(data, dict):
            raise MetadataError("user-data is not a JSON object")
        return data

    async def instance(self, name: str) -> str:
        """One instance metadata value, e.g. `instance-id` or `placement/availability-zone`."""
        return (await self.text(f"latest/meta-data/{name}")).strip()

    async def spot_termination_status(self) -> int:
        """The HTTP status of the spot termination notice (200: the instance is being reclaimed)."""
        url = f"{self.base_url}/{SPOT_TERMINATION_PATH}"
        async with self._session.get(url, timeout=TIMEOUT) as response:
            await response.read()
            return response.status
