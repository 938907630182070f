"""Hawk signing for the proxy, through the official `taskcluster` client's own code paths.

The client builds the Hawk `ext` (temporary-credential certificate plus `authorizedScopes`)
in `makeHawkExt()` and bewits in `buildSignedUrl()`; `HawkSigner` applies both to arbitrary
URLs instead of named API methods, so the proxy signs exactly as the client does.

Requests are signed without a payload hash (like the Go client upstream's proxy uses), so
bodies can be streamed: Taskcluster services check a payload hash only when one is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mohawk
import taskcluster.client

from generic_worker.tc import Credentials

_UNUSED_ROOT_URL = "http://taskcluster-proxy.invalid"


class _UrlSigningClient(taskcluster.client.BaseClient):  # type: ignore[misc]
    """The official base client, whose "method name" is the URL to sign."""

    classOptions: dict[str, Any] = {}  # noqa: N815 - the client's own name
    serviceName = "taskcluster-proxy"  # noqa: N815
    apiVersion = "v1"  # noqa: N815
    funcinfo: dict[str, Any] = {}

    def buildUrl(self, methodName: str, *args: Any, **kwargs: Any) -> str:  # noqa: N802, N803
        return methodName


class HawkSigner:
    """Signs with one set of credentials, restricted to `authorized_scopes`."""

    def __init__(self, credentials: Credentials, authorized_scopes: Sequence[str]) -> None:
        options = {
            "rootUrl": _UNUSED_ROOT_URL,
            "credentials": dict(credentials),
            "authorizedScopes": list(authorized_scopes),
        }
        # A session is never used for signing; passing one keeps the client from making its own.
        self._client = _UrlSigningClient(options, session=_NO_SESSION)

    def authorization(self, method: str, url: str) -> str:
        """The `Authorization` header for `method url` (the exact URL that will be sent)."""
        credentials = self._client.options["credentials"]
        sender = mohawk.Sender(
            credentials={
                "id": credentials["clientId"],
                "key": credentials["accessToken"],
                "algorithm": "sha256",
            },
            ext=self._client.makeHawkExt() or {},
            url=url,
            method=method,
            always_hash_content=False,
        )
        header: str = sender.request_header
        return header

    def signed_url(self, url: str, expires_in: int) -> str:
        """`url` with a `bewit` query argument valid for `expires_in` seconds (GET only)."""
        signed: str = self._client.buildSignedUrl(url, expiration=expires_in)
        return signed


class _NoSession:
    """Stands in for the HTTP session the client would otherwise create and never use here."""


_NO_SESSION = _NoSession()
