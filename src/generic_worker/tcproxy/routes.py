"""Where the proxy sends a request: task-facing paths mapped to Taskcluster URLs (upstream's rules).

- `/api/<service>/<version>/<path>` -> `<rootURL>/api/<service>/<version>/<path>` (the preferred
  form: a client can use `$TASKCLUSTER_PROXY_URL` as its root URL);
- `/<service>/<version>/<path>` with no dot in `<service>` -> the same (legacy shortcut);
- `/<host.name>/<path>` -> `https://<host.name>/<path>` (third-party Hawk services).

Paths and query strings are used as received, still percent-encoded (`%2F` in artifact names
must survive, and the Hawk MAC covers the URL exactly as sent). A service's `v1` base URL
follows the config's legacy per-service keys (`queueBaseURL`...) when they are set.
"""

from __future__ import annotations

import re

from generic_worker.config import Config

_API_PATH = re.compile(r"^/api/(?P<service>[^/]*)/(?P<version>[^/]*)/(?P<path>.*)$")
_HOSTNAME = re.compile(
    r"^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*"
    r"([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9])$"
)


class UnknownEndpoint(Exception):
    """The path names no service the proxy can forward to (the proxy answers 404)."""


def target_url(config: Config, raw_path: str, raw_query: str) -> str:
    """The URL to forward `raw_path?raw_query` to; raises UnknownEndpoint."""
    query = f"?{raw_query}" if raw_query else ""
    if raw_path.startswith("/api/") or raw_path == "/api":
        match = _API_PATH.match(raw_path)
        if match is None:
            raise UnknownEndpoint(f"invalid /api path: {raw_path}")
        return _api(config, match["service"], match["version"], match["path"]) + query
    service, _, rest = raw_path.removeprefix("/").partition("/")
    if not _HOSTNAME.match(service):
        raise UnknownEndpoint(f"{service} is not a valid taskcluster service")
    if "." in service:
        return f"https://{service}/{rest}{query}"
    version, _, path = rest.partition("/")
    return _api(config, service, version, path) + query


def _api(config: Config, service: str, version: str, path: str) -> str:
    if not service or not version:
        raise UnknownEndpoint(f"invalid service path: /{service}/{version}")
    if version == "v1":
        base = config.service_base_url(service)
    else:
        base = f"{config.root_url.rstrip('/')}/api/{service}/{version}"
    if not base.startswith(("http://", "https://")):
        raise UnknownEndpoint(f"no rootURL configured to reach service {service}")
    return f"{base}/{path}"
