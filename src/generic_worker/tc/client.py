"""Builds official `taskcluster.aio` clients bound to the config's URLs and given credentials.

One shared aiohttp session serves every client (keep-alive, one connection pool); each client
object is cheap, so callers ask for a fresh one whenever credentials may have changed (task
credentials are replaced on every reclaim).
"""

from __future__ import annotations

from typing import Any, TypedDict

import aiohttp
import taskcluster.aio

from generic_worker.config import Config

API_TIMEOUT = aiohttp.ClientTimeout(total=180, sock_connect=30)
"""claimWork long-polls ~20 s; nothing else should take minutes."""


class Credentials(TypedDict, total=False):
    """Taskcluster credentials as the client takes them."""

    clientId: str
    accessToken: str
    certificate: str


_CLASSES: dict[str, Any] = {
    "queue": taskcluster.aio.Queue,
    "auth": taskcluster.aio.Auth,
    "purge-cache": taskcluster.aio.PurgeCache,
    "index": taskcluster.aio.Index,
    "object": taskcluster.aio.Object,
    "secrets": taskcluster.aio.Secrets,
    "worker-manager": taskcluster.aio.WorkerManager,
}


def _with_base_url(cls: Any, base_url: str) -> Any:
    """A client subclass that sends requests to a legacy per-service base URL."""

    class LegacyBaseUrlClient(cls):  # type: ignore[misc]
        def _constructUrl(self, route: str) -> str:  # noqa: N802 - the client's own name
            return base_url.rstrip("/") + "/" + route.lstrip("/")

    return LegacyBaseUrlClient


class ServiceFactory:
    """Creates Taskcluster clients; owns the shared HTTP session and the worker's credentials."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._session: aiohttp.ClientSession | None = None
        self.worker_credentials: Credentials = {
            "clientId": config.client_id,
            "accessToken": config.access_token,
        }
        if config.certificate:
            self.worker_credentials["certificate"] = config.certificate

    @property
    def root_url(self) -> str:
        """The root URL tasks see as TASKCLUSTER_ROOT_URL."""
        return self._config.root_url.rstrip("/")

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared session, created on first use inside the running event loop."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=API_TIMEOUT)
        return self._session

    async def close(self) -> None:
        """Close the shared session (at worker exit)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def client(self, service: str, credentials: Credentials | None = None, *, max_retries: int = 10) -> Any:
        """A client for `service` with `credentials` (default: the worker's; {} = anonymous)."""
        creds = self.worker_credentials if credentials is None else credentials
        cls = _CLASSES[service]
        legacy = {
            "queue": self._config.queue_base_url,
            "auth": self._config.auth_base_url,
            "purge-cache": self._config.purge_cache_base_url,
        }.get(service, "")
        if legacy:
            cls = _with_base_url(cls, legacy)
        root = self._config.root_url or "http://legacy-base-urls.invalid"
        options: dict[str, Any] = {"rootUrl": root, "maxRetries": max_retries}
        if creds:
            options["credentials"] = dict(creds)
        return cls(options, session=self.session)

    def queue(self, credentials: Credentials | None = None, *, max_retries: int = 10) -> Any:
        """A queue client (worker credentials unless task credentials are given)."""
        return self.client("queue", credentials, max_retries=max_retries)
