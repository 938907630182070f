"""The typed payload model matches the schemas key for key, and its helpers read payloads right."""

from __future__ import annotations

import types
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest
from jsonschema import Draft6Validator  # type: ignore[import-untyped, unused-ignore]

from generic_worker.payload import Engine, load_schema
from generic_worker.payload.model import (
    DEFAULT_BACKING_LOG_NAME,
    DEFAULT_LIVE_LOG_NAME,
    DOCKER_WORKER_PAYLOAD_UNSUPPORTED,
    FEATURE_DEFAULTS,
    ArchiveFormat,
    Artifact,
    ArtifactContent,
    Base64Content,
    FeatureName,
    Features,
    FileFormat,
    FileMount,
    IndexedContent,
    Logs,
    OnExitStatus,
    Payload,
    RawContent,
    ReadOnlyDirectory,
    URLContent,
    WritableDirectoryCache,
    as_payload,
    backing_log_name,
    content_kind,
    feature_enabled,
    is_docker_worker_payload,
    live_log_name,
    mount_kind,
    purge_caches_exit_codes,
    retry_exit_codes,
)

SCALARS = {"string": str, "boolean": bool, "integer": int}
CONTENT_BRANCHES = [ArtifactContent, IndexedContent, URLContent, RawContent, Base64Content]


def schema_objects(engine: Engine) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Each TypedDict of the model with the schema object it stands for."""
    schema = load_schema(engine)
    properties = schema["properties"]
    definitions = schema["definitions"]
    pairs: dict[str, tuple[Any, dict[str, Any]]] = {
        "payload": (Payload, schema),
        "artifact": (Artifact, properties["artifacts"]["items"]),
        "features": (Features, properties["features"]),
        "logs": (Logs, properties["logs"]),
        "onExitStatus": (OnExitStatus, properties["onExitStatus"]),
        "fileMount": (FileMount, definitions["fileMount"]),
        "writableDirectoryCache": (WritableDirectoryCache, definitions["writableDirectoryCache"]),
        "readOnlyDirectory": (ReadOnlyDirectory, definitions["readOnlyDirectory"]),
    }
    for model, branch in zip(CONTENT_BRANCHES, definitions["content"]["oneOf"], strict=True):
        pairs[model.__name__] = (model, branch)
    return pairs


def check_type(hint: Any, prop: dict[str, Any], where: str) -> None:
    """The Python type of a key agrees with the schema's type (and enum, for Literals)."""
    if "$ref" in prop:
        assert get_origin(hint) in (Union, types.UnionType), where
        return
    kind = prop["type"]
    if kind in SCALARS:
        if get_origin(hint) is Literal:
            assert list(get_args(hint)) == prop["enum"], where
        else:
            assert hint is SCALARS[kind] and "enum" not in prop, where
    elif kind == "array":
        assert get_origin(hint) is list, where
    else:
        assert kind == "object", where
        assert is_typeddict(hint) or get_origin(hint) is dict, where


def test_model_and_schemas_have_the_same_keys_types_and_required_keys() -> None:
    seen: dict[str, set[str]] = {}
    for engine in Engine:
        for name, (model, schema_object) in schema_objects(engine).items():
            hints = get_type_hints(model)
            declared = schema_object["properties"]
            # Every schema key is in the model, with a matching type...
            assert set(declared) <= set(hints), (engine, name)
            for key, prop in declared.items():
                check_type(hints[key], prop, f"{engine}:{name}.{key}")
            assert model.__required_keys__ == set(schema_object.get("required", [])), name
            seen.setdefault(name, set()).update(declared)
    # ...and every model key is in the schema of at least one engine.
    for name, (model, _) in schema_objects(Engine.INSECURE).items():
        assert set(get_type_hints(model)) == seen[name], name


def test_format_literals_are_the_schema_enums() -> None:
    definitions = load_schema(Engine.MULTIUSER)["definitions"]
    assert list(get_args(FileFormat)) == definitions["fileMount"]["properties"]["format"]["enum"]
    for kind in ("writableDirectoryCache", "readOnlyDirectory"):
        assert list(get_args(ArchiveFormat)) == definitions[kind]["properties"]["format"]["enum"]


def test_feature_defaults_are_the_schema_defaults() -> None:
    assert set(get_args(FeatureName)) == set(get_type_hints(Features)) == set(FEATURE_DEFAULTS)
    for engine in Engine:
        features = load_schema(engine)["properties"]["features"]["properties"]
        for name, prop in features.items():
            assert FEATURE_DEFAULTS[name] is prop.get("default", False), name
    assert [name for name, on in FEATURE_DEFAULTS.items() if on] == [
        "backingLog",
        "liveLog",
        "resourceMonitor",
    ]


def test_log_name_defaults_are_the_schema_defaults() -> None:
    logs = load_schema(Engine.INSECURE)["properties"]["logs"]["properties"]
    assert logs["live"]["default"] == DEFAULT_LIVE_LOG_NAME == "public/logs/live.log"
    assert logs["backing"]["default"] == DEFAULT_BACKING_LOG_NAME == "public/logs/live_backing.log"


def test_feature_enabled_falls_back_on_defaults() -> None:
    bare = as_payload({"command": [["true"]], "maxRunTime": 1})
    assert feature_enabled(bare, "liveLog") is True
    assert feature_enabled(bare, "taskclusterProxy") is False
    chosen = as_payload(
        {
            "command": [["true"]],
            "maxRunTime": 1,
            "features": {"liveLog": False, "chainOfTrust": True},
        }
    )
    assert feature_enabled(chosen, "liveLog") is False
    assert feature_enabled(chosen, "chainOfTrust") is True
    assert feature_enabled(chosen, "backingLog") is True


def test_log_names_and_exit_codes() -> None:
    bare = as_payload({"command": [["true"]], "maxRunTime": 1})
    assert (live_log_name(bare), backing_log_name(bare)) == (
        "public/logs/live.log",
        "public/logs/live_backing.log",
    )
    assert retry_exit_codes(bare) == purge_caches_exit_codes(bare) == frozenset()
    full = as_payload(
        {
            "command": [["true"]],
            "maxRunTime": 1,
            "logs": {"live": "public/l.log"},
            "onExitStatus": {"retry": [3, 4], "purgeCaches": [0]},
        }
    )
    assert (live_log_name(full), backing_log_name(full)) == (
        "public/l.log",
        "public/logs/live_backing.log",
    )
    assert retry_exit_codes(full) == {3, 4}
    assert purge_caches_exit_codes(full) == {0}


def test_docker_worker_payloads_are_recognised() -> None:
    assert is_docker_worker_payload({"image": "ubuntu:24.04", "command": ["ls"], "maxRunTime": 3})
    assert not is_docker_worker_payload({"command": [["ls"]], "maxRunTime": 3})
    assert not is_docker_worker_payload(["image"])
    assert DOCKER_WORKER_PAYLOAD_UNSUPPORTED == "docker-worker payloads are not supported by this worker"


def test_as_payload_refuses_a_non_object() -> None:
    with pytest.raises(TypeError, match="JSON object, not list"):
        as_payload([])


def only(definition: str, value: object) -> bool:
    """Whether ``value`` is valid against one definition of the multiuser schema."""
    schema = load_schema(Engine.MULTIUSER)
    root = {
        "definitions": schema["definitions"],
        "allOf": [{"$ref": f"#/definitions/{definition}"}],
    }
    return bool(Draft6Validator(root).is_valid(value))


@pytest.mark.parametrize(
    ("mount", "kind"),
    [
        ({"file": "f", "content": {"raw": "x"}}, "fileMount"),
        ({"file": "f", "content": {"raw": "x"}, "format": "gz"}, "fileMount"),
        ({"directory": "d", "cacheName": "c"}, "writableDirectoryCache"),
        (
            {"directory": "d", "cacheName": "c", "content": {"raw": "x"}, "format": "zip"},
            "writableDirectoryCache",
        ),
        ({"directory": "d", "content": {"raw": "x"}, "format": "tar.gz"}, "readOnlyDirectory"),
    ],
)
def test_mount_kind_agrees_with_the_schema(mount: Any, kind: str) -> None:
    assert mount_kind(mount) == kind
    valid_as = [d for d in ("fileMount", "writableDirectoryCache", "readOnlyDirectory") if only(d, mount)]
    assert valid_as == [kind]


@pytest.mark.parametrize(
    ("content", "kind", "index"),
    [
        ({"taskId": "KTBKfEgxR5GdfIIREQIvFQ", "artifact": "a"}, "artifact", 0),
        ({"namespace": "n", "artifact": "a"}, "indexed", 1),
        ({"url": "https://e.com/", "sha256": "0" * 64}, "url", 2),
        ({"raw": ""}, "raw", 3),
        ({"base64": "AA=="}, "base64", 4),
    ],
)
def test_content_kind_agrees_with_the_schema(content: Any, kind: str, index: int) -> None:
    assert content_kind(content) == kind
    branches = load_schema(Engine.INSECURE)["definitions"]["content"]["oneOf"]
    assert [i for i, branch in enumerate(branches) if Draft6Validator(branch).is_valid(content)] == [index]
