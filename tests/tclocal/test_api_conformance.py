"""tc-local's endpoint tables and request schemas against upstream's API references.

Every endpoint tc-local declares must exist upstream with the same method, route, query
arguments and scope expression; the endpoints the issue requires must all be declared; and
the request schemas tc-local authored must accept and reject what upstream's do.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import taskcluster

from tclocal.auth.api import SCOPESET
from tclocal.core.validation import Validator
from tclocal.object import api as object_api
from tclocal.queue import schemas as queue_schemas
from tclocal.secrets import api as secrets_api
from tclocal.testing import RunningTCLocal
from tclocal.worker_manager import schemas as worker_manager_schemas

from .upstream import HAVE_REFERENCES, HAVE_SCHEMAS, SCHEMAS, Unpublished, _registry, api_reference

pytestmark = pytest.mark.tclocal_only("compares tc-local's own endpoint tables and schemas with upstream's")

REQUIRED = {
    "queue": {
        "ping", "createTask", "task", "status", "cancelTask", "rerunTask", "scheduleTask",
        "claimWork", "reclaimTask", "reportCompleted", "reportFailed", "reportException",
        "listTaskGroup", "pendingTasks", "createArtifact", "finishArtifact", "getArtifact",
        "getLatestArtifact", "listArtifacts", "listLatestArtifacts", "artifactInfo",
        "latestArtifactInfo", "artifact", "latestArtifact",
    },
    "auth": {
        "createClient", "client", "deleteClient", "resetAccessToken", "createRole", "role",
        "expandScopes", "currentScopes", "testAuthenticate",
    },
    "object": {"createUpload", "finishUpload", "startDownload", "object"},
    "purge-cache": {"purgeCache", "purgeRequests"},
    "secrets": {"set", "get", "remove", "list"},
    "index": {"insertTask", "findTask"},
    "worker-manager": {
        "ping", "createWorkerPool", "updateWorkerPool", "workerPool", "deleteWorkerPool",
        "listWorkerPools", "registerWorker", "reregisterWorker", "worker", "listWorkersForWorkerPool",
        "removeWorker", "shouldWorkerTerminate", "reportWorkerError", "listWorkerPoolErrors",
    },
}  # fmt: skip


def _route(route: str) -> str:
    return route.replace("<*", "<").replace("<?", "<").rstrip("/")


@pytest.mark.skipif(not HAVE_REFERENCES, reason="upstream API references not present")
@pytest.mark.parametrize("service", sorted(REQUIRED))
def test_endpoints_match_upstream(local: RunningTCLocal, service: str) -> None:
    upstream = {e["name"]: e for e in api_reference(service)["entries"]}
    ours = local.server.services[service].endpoints
    assert REQUIRED[service] <= {e.name for e in ours}
    for endpoint in ours:
        entry = upstream[endpoint.name]
        assert endpoint.method == entry["method"].upper(), endpoint.name
        assert _route(endpoint.route) == _route(entry["route"]), endpoint.name
        assert endpoint.scopes == entry.get("scopes"), endpoint.name
        assert set(endpoint.query) == set(entry.get("query", [])), endpoint.name
        assert (endpoint.input is not None) == ("input" in entry), endpoint.name


@pytest.mark.parametrize("service", sorted(REQUIRED))
def test_every_declared_route_is_what_the_official_client_calls(local: RunningTCLocal, service: str) -> None:
    """Each of our endpoints answers the URL the official client builds for it."""
    client_class = {
        "queue": taskcluster.Queue,
        "auth": taskcluster.Auth,
        "object": taskcluster.Object,
        "purge-cache": taskcluster.PurgeCache,
        "secrets": taskcluster.Secrets,
        "index": taskcluster.Index,
        "worker-manager": taskcluster.WorkerManager,
    }[service]
    client = client_class({"rootUrl": "http://127.0.0.1:1"})
    values = {"taskQueueId": "prov/type", "name": "public/a b/c", "workerPoolId": "prov/type", "runId": "0"}
    for endpoint in local.server.services[service].endpoints:
        info = client_class.funcinfo[endpoint.name]
        args = [values.get(a, f"{a}-value") for a in info["args"]]
        url = client.buildUrl(endpoint.name, *args, *([{}] if "input" in info else []))
        raw_path = url.split(f"/api/{service}/v1", 1)[1]
        match = local.server.services[service].match(endpoint.method, raw_path)
        assert match is not None and match[0].name == endpoint.name, (endpoint.name, raw_path)
        assert match[1] == dict(zip(info["args"], args, strict=True))


# --- request schemas --------------------------------------------------------------------------

PROSE = ("title", "description", "$id", "$schema", "default", "examples")


def _resolve(node: Any, base: str) -> Any:
    """Inline upstream `$ref`s (relative to the file's $id) and drop prose.

    A `$ref` into a file missing from the reference set becomes `{"$unpublished": ref}`.
    """
    if isinstance(node, list):
        return [_resolve(item, base) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        resolver = _registry().resolver(base)
        resolved = resolver.lookup(node["$ref"])
        if isinstance(resolved.contents, Unpublished):
            return {"$unpublished": node["$ref"]}
        target_base = str(resolved.resolver._base_uri) or base  # noqa: SLF001
        merged = {**resolved.contents, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, target_base)
    return {
        key: (
            {name: _resolve(value, base) for name, value in sub.items()}
            if key == "properties" and isinstance(sub := value, dict)
            else _resolve(value, base)
        )
        for key, value in node.items()
        if key not in PROSE
    }


def _upstream(service: str, name: str) -> Any:
    schema = json.loads((SCHEMAS / service / "v1" / name).read_text())
    return _resolve(schema, schema["$id"].split("#")[0])


def _ours(validator: Validator) -> Any:
    return _resolve(copy.deepcopy(validator.schema), "")


OURS: list[tuple[str, str, Validator]] = [
    ("queue", "create-task-request.json", queue_schemas.CREATE_TASK),
    ("queue", "claim-work-request.json", queue_schemas.CLAIM_WORK),
    ("queue", "task-exception-request.json", queue_schemas.TASK_EXCEPTION),
    ("queue", "finish-artifact-request.json", queue_schemas.FINISH_ARTIFACT),
    ("queue", "post-artifact-request.json", queue_schemas.POST_ARTIFACT),
    ("object", "create-upload-request.json", object_api.CREATE_UPLOAD),
    ("object", "finish-upload-request.json", object_api.FINISH_UPLOAD),
    ("object", "download-object-request.json", object_api.START_DOWNLOAD),
    ("secrets", "secret.json", secrets_api.SECRET),
    ("auth", "scopeset.json", SCOPESET),
    ("worker-manager", "register-worker-request.json", worker_manager_schemas.REGISTER_WORKER),
    ("worker-manager", "reregister-worker-request.json", worker_manager_schemas.REREGISTER_WORKER),
    ("worker-manager", "report-worker-error-request.json", worker_manager_schemas.REPORT_WORKER_ERROR),
]


def _mask_unpublished(upstream: Any, ours: Any) -> Any:
    """`ours` with the parts upstream cannot show (refs to unpublished files) masked the same way."""
    if isinstance(upstream, dict) and "$unpublished" in upstream:
        return upstream if ours is not None else None
    if isinstance(upstream, dict) and isinstance(ours, dict):
        return {k: _mask_unpublished(upstream.get(k), v) for k, v in ours.items()}
    if isinstance(upstream, list) and isinstance(ours, list) and len(upstream) == len(ours):
        return [_mask_unpublished(u, o) for u, o in zip(upstream, ours, strict=True)]
    return ours


def _interface(node: Any) -> Any:
    """What a schema accepts, as comparable data: keys that constrain values, sorted lists."""
    if isinstance(node, dict):
        out = {k: _interface(v) for k, v in node.items() if k not in ("format",) or v != "regex"}
        for key in ("required", "enum"):
            if key in out and isinstance(out[key], list):
                out[key] = sorted(out[key])
        return out
    if isinstance(node, list):
        return [_interface(item) for item in node]
    return node


@pytest.mark.skipif(not HAVE_SCHEMAS, reason="upstream schemas not present")
@pytest.mark.parametrize("service, name, validator", OURS, ids=[f"{s}/{n}" for s, n, _ in OURS])
def test_request_schemas_match_upstream(service: str, name: str, validator: Validator) -> None:
    upstream = _interface(_upstream(service, name))
    ours = _mask_unpublished(upstream, _interface(_ours(validator)))
    if service == "queue" and name == "create-task-request.json":
        # We omit the `anyOf: [uri, regex]` formats of `source` (its pattern constrains it).
        upstream["properties"]["metadata"]["properties"]["source"].pop("anyOf", None)
    assert ours == upstream
