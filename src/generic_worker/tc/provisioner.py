"""A client for the (legacy) aws-provisioner, built by the official client from its API reference.

The official `taskcluster` package no longer ships this service's client, so the three calls
`--configure-for-aws` needs are declared here as API-reference entries and turned into an
aio client class by `taskcluster.aio.createApiClient`: Hawk signing, retries and errors are the
official client's. The provisioner lives at its own base URL (user-data's `provisionerBaseUrl`
or the config's `provisionerBaseURL`), not under a root URL.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from taskcluster.aio.asyncclient import AsyncBaseClient, createApiClient

from generic_worker.tc.client import Credentials

_REFERENCE: dict[str, Any] = {
    "reference": {
        "serviceName": "aws-provisioner",
        "apiVersion": "v1",
        "description": "The legacy AWS provisioner: worker-type secrets and definitions.",
        "entries": [
            {
                "type": "function",
                "name": "getSecret",
                "method": "get",
                "route": "/secret/<token>",
                "args": ["token"],
                "query": [],
                "stability": "stable",
            },
            {
                "type": "function",
                "name": "removeSecret",
                "method": "delete",
                "route": "/secret/<token>",
                "args": ["token"],
                "query": [],
                "stability": "stable",
            },
            {
                "type": "function",
                "name": "workerType",
                "method": "get",
                "route": "/worker-type/<workerType>",
                "args": ["workerType"],
                "query": [],
                "stability": "stable",
            },
        ],
    }
}


class _AwsProvisioner(AsyncBaseClient, createApiClient("AwsProvisioner", _REFERENCE)):  # type: ignore[misc]
    """The generated calls on the aio base client.

    Quirk of taskcluster 113: `taskcluster.aio.createApiClient` builds its class on the *sync*
    `BaseClient`, so its (async) calls would await a dict; putting `AsyncBaseClient` first in
    the bases makes `_makeApiCall` the aio one.
    """


def provisioner_client(
    session: aiohttp.ClientSession,
    base_url: str,
    credentials: Credentials | None = None,
    *,
    max_retries: int = 5,
) -> Any:
    """An aws-provisioner client at `base_url` (anonymous unless `credentials` are given)."""
    base = base_url.rstrip("/")

    class _AtBaseUrl(_AwsProvisioner):
        def _constructUrl(self, route: str) -> str:  # noqa: N802 - the client's own name
            return base + "/" + route.lstrip("/")

    options: dict[str, Any] = {"rootUrl": "http://aws-provisioner.invalid", "maxRetries": max_retries}
    if credentials:
        options["credentials"] = dict(credentials)
    return _AtBaseUrl(options, session=session)
