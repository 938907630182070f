"""Upstream's API references and JSON schemas (read from ../shared at test time, never copied).

`check_response(service, output, value)` validates a response against upstream's response
schema with Draft6Validator; `$ref`s between files resolve through a registry built from the
schema directory (a reference to a file that is not in the directory, e.g. worker-manager's
`worker-pool-full.json`, resolves to an `Unpublished` schema that accepts anything).
Every schema checked is recorded in CHECKED, so a test can report coverage.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft6Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT6

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "schemas" / "modern"
SCHEMAS = REFERENCE / "schemas"
REFERENCES = REFERENCE / "references"
HAVE_SCHEMAS = SCHEMAS.is_dir()
HAVE_REFERENCES = REFERENCES.is_dir()

CHECKED: set[str] = set()


class Unpublished(dict[str, Any]):
    """A schema file missing from the reference set: every pointer into it is an empty schema."""

    def __getitem__(self, key: str) -> Any:
        return Unpublished()

    def get(self, key: str, default: Any = None) -> Any:
        return default


def _strip(uri: str) -> str:
    return uri.split("#", 1)[0]


@functools.cache
def _registry() -> Registry[Any]:
    def missing(uri: str) -> Resource[Any]:
        return DRAFT6.create_resource(Unpublished())

    resources = []
    for path in SCHEMAS.rglob("*.json"):
        schema = json.loads(path.read_text())
        if "$id" in schema:
            resources.append((_strip(schema["$id"]), DRAFT6.create_resource(schema)))
    return Registry(retrieve=missing).with_resources(resources)  # type: ignore[call-arg]


def schema_uri(service: str, output: str) -> str:
    """`v1/task-status-response.json#` of service `queue` -> `/schemas/queue/v1/...json`."""
    return f"/schemas/{service}/{_strip(output)}"


def has_schema(uri: str) -> bool:
    """True when upstream's schema file for `uri` is present."""
    return (REFERENCE / uri.lstrip("/")).is_file()


@functools.cache
def _validator(uri: str) -> Draft6Validator:
    schema = json.loads((REFERENCE / uri.lstrip("/")).read_text())
    return Draft6Validator(schema, registry=_registry(), format_checker=Draft6Validator.FORMAT_CHECKER)


def check_response(service: str, output: str | None, value: Any) -> None:
    """Validate `value` against upstream's output schema, when there is one to check."""
    if not HAVE_SCHEMAS or not output:
        return
    uri = schema_uri(service, output)
    if not has_schema(uri):
        return
    errors = sorted(str(e.message) for e in _validator(uri).iter_errors(value))
    assert not errors, f"response does not match {uri}: {errors}\n{json.dumps(value)[:2000]}"
    CHECKED.add(uri)


def api_reference(service: str) -> dict[str, Any]:
    """Upstream's api.json for a service."""
    loaded: dict[str, Any] = json.loads((REFERENCES / service / "v1" / "api.json").read_text())
    return loaded


def request_schema(service: str, name: str) -> dict[str, Any]:
    """An upstream request schema by file name."""
    loaded: dict[str, Any] = json.loads((SCHEMAS / service / "v1" / name).read_text())
    return loaded


class Checked:
    """Wraps a taskcluster aio client so that every response is checked against upstream."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._service = client.serviceName

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        info = type(self._client).funcinfo.get(name)
        if info is None:
            return attribute

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = await attribute(*args, **kwargs)
            check_response(self._service, info.get("output"), result)
            return result

        return call
