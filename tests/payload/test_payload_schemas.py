"""Our two authored payload schemas: valid, consistent with each other, printed as Go prints."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft6Validator  # type: ignore[import-untyped, unused-ignore]

from generic_worker.payload import Engine, load_schema, schema_json


def without_prose(node: Any, *, keep_keys: bool = False) -> Any:
    """Drop titles and descriptions (never a property literally named so)."""
    if isinstance(node, dict):
        return {
            key: without_prose(value, keep_keys=key in ("properties", "definitions"))
            for key, value in node.items()
            if keep_keys or key not in ("title", "description")
        }
    if isinstance(node, list):
        return [without_prose(item) for item in node]
    return node


@pytest.mark.parametrize("engine", list(Engine))
def test_schema_is_a_valid_draft6_schema(engine: Engine) -> None:
    schema = load_schema(engine)
    assert schema["$schema"] == "http://json-schema.org/draft-06/schema#"
    Draft6Validator.check_schema(schema)


@pytest.mark.parametrize("engine", list(Engine))
def test_every_property_is_documented(engine: Engine) -> None:
    """An operator reads the schema: every property and definition has a description."""
    undocumented: list[str] = []

    def walk(node: dict[str, Any], where: str) -> None:
        for name, sub in node.get("properties", {}).items():
            if not sub.get("description"):
                undocumented.append(f"{where}.{name}")
            walk(sub, f"{where}.{name}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{where}[]")
        for index, branch in enumerate(node.get("oneOf", [])):
            walk(branch, f"{where}|{index}")

    schema = load_schema(engine)
    walk(schema, "(root)")
    for name, definition in schema["definitions"].items():
        if not definition.get("description"):
            undocumented.append(f"definitions.{name}")
        walk(definition, f"definitions.{name}")
    assert undocumented == []


def test_engines_differ_only_where_intended() -> None:
    """Bar prose and ids, the multiuser schema only adds ``features.runTaskAsCurrentUser``."""
    insecure = without_prose(load_schema(Engine.INSECURE))
    multiuser = without_prose(load_schema(Engine.MULTIUSER))
    assert insecure.pop("$id") == "/schemas/generic-worker-py/payload/insecure_posix.json#"
    assert multiuser.pop("$id") == "/schemas/generic-worker-py/payload/multiuser_posix.json#"
    extra = multiuser["properties"]["features"]["properties"].pop("runTaskAsCurrentUser")
    assert extra == {"type": "boolean"}
    assert insecure == multiuser


@pytest.mark.parametrize("engine", list(Engine))
def test_chain_of_trust_and_superseder_url_in_both_engines(engine: Engine) -> None:
    properties = load_schema(engine)["properties"]
    assert properties["features"]["properties"]["chainOfTrust"]["type"] == "boolean"
    superseder = properties["supersederUrl"]
    assert superseder["format"] == "uri"
    assert "GET <supersederUrl>?taskId=<taskId>" in superseder["description"]


def test_load_schema_returns_an_independent_copy() -> None:
    first = load_schema(Engine.INSECURE)
    first["properties"].clear()
    assert "command" in load_schema(Engine.INSECURE)["properties"]


@pytest.mark.parametrize("engine", list(Engine))
def test_schema_json_is_sorted_indented_and_go_escaped(engine: Engine) -> None:
    text = schema_json(engine)
    assert json.loads(text) == load_schema(engine)
    assert text.startswith('{\n  "$id": ')
    assert not text.endswith("\n")
    # The descriptions mention <taskId>, <cacheName>...: printed escaped, as Go's encoder did.
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\\u003ccacheName\\u003e" in text
    assert text.index('"additionalProperties"') < text.index('"definitions"')
    plain = json.dumps(load_schema(engine), indent=2, sort_keys=True, ensure_ascii=False)
    escaped = plain.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    assert text == escaped


def test_go_escaping_of_ampersand_and_line_separators() -> None:
    from generic_worker.payload.gojson import go_json_dumps

    assert go_json_dumps({"b": "x & y", "a": "\u2028é"}) == '{"a":"\\u2028é","b":"x \\u0026 y"}'
    assert go_json_dumps(["a"], indent=2) == '[\n  "a"\n]'
