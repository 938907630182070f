"""The aiohttp application: every service under `/api/<service>/v1/`, plus the blob routes."""

from __future__ import annotations

from aiohttp import web

from tclocal.auth.api import PARAMS as AUTH_PARAMS
from tclocal.auth.api import AuthService
from tclocal.context import Context
from tclocal.core.blobs import BlobStore
from tclocal.core.endpoints import Endpoint, Service, health_endpoints, json_reply
from tclocal.core.errors import APIError, error_body
from tclocal.index.api import IndexService
from tclocal.object.api import ObjectService
from tclocal.purge_cache.api import PurgeCacheService
from tclocal.queue.artifacts_api import QueueArtifacts
from tclocal.queue.tasks_api import QueueTasks
from tclocal.queue.worker_api import QueueWorker
from tclocal.secrets.api import SecretsService
from tclocal.web import WebView
from tclocal.worker_manager.api import WorkerManagerService
from tclocal.worker_manager.schemas import PARAMS as WORKER_MANAGER_PARAMS


def build_services(ctx: Context, wst_secret: str) -> dict[str, Service]:
    """Every service tc-local implements, by name."""
    queue: list[Endpoint] = [
        *health_endpoints(),
        *QueueTasks(ctx).endpoints(),
        *QueueWorker(ctx).endpoints(),
        *QueueArtifacts(ctx).endpoints(),
    ]
    tables = {
        "queue": queue,
        "auth": AuthService(ctx, wst_secret).endpoints(),
        "object": ObjectService(ctx).endpoints(),
        "purge-cache": PurgeCacheService(ctx).endpoints(),
        "secrets": SecretsService(ctx).endpoints(),
        "index": IndexService(ctx).endpoints(),
        "worker-manager": WorkerManagerService(ctx).endpoints(),
    }
    params = {"worker-manager": WORKER_MANAGER_PARAMS, "auth": AUTH_PARAMS}
    return {
        name: Service(name, endpoints, ctx.authenticator, params.get(name))
        for name, endpoints in tables.items()
    }


def build_app(services: dict[str, Service], blobs: BlobStore, view: WebView | None = None) -> web.Application:
    """The web application routing `/api/<service>/v1/...` on the raw path, plus the web view.

    `/` is the web view's task list for a browser (Accept: text/html), tc-local's JSON otherwise.
    """

    async def dispatch(request: web.Request) -> web.StreamResponse:
        service = services.get(request.match_info["service"])
        if service is None or request.match_info["version"] != "v1":
            err = APIError("ResourceNotFound", f"No such service: {request.path}")
            return json_reply(error_body(err, "unknown", {}, None), err.status)
        return await service.handle(request)

    async def root(request: web.Request) -> web.StreamResponse:
        if view is not None and "text/html" in request.headers.get("Accept", ""):
            return await view.index(request)
        return json_reply(
            {"tc-local": True, "services": sorted(services), "rootUrl": f"{request.scheme}://{request.host}"}
        )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.add_routes(
        [
            web.get("/", root),
            # `[\s\S]`, not `.`: a decoded path may hold a newline, which the URL patterns refuse (400).
            web.route("*", r"/api/{service}/{version}{tail:(/[\s\S]*)?}", dispatch),
            *blobs.routes(),
            *(view.routes() if view is not None else []),
        ]
    )
    return app
