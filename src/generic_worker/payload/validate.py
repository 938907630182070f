"""Payload validation, reported in the seed's words.

The seed validated with gojsonschema and logged one ``- <field>: <problem>`` line per error. We
validate with jsonschema's Draft6Validator and reword every error the way gojsonschema words it:
``<field>`` is the JSON path with array indices as numbers, joined with ``.``, and ``(root)`` for
the payload itself. Every problem is reported, not only the first, in a stable order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cache
from typing import Any

from jsonschema import (  # type: ignore[import-untyped, unused-ignore]  # no stubs
    Draft6Validator,
    ValidationError,
)

from generic_worker.payload import Engine, load_schema
from generic_worker.payload.formats import payload_format_checker
from generic_worker.payload.gojson import go_json_dumps

__all__ = [
    "INVALID_PAYLOAD_HEADER",
    "invalid_payload_log_lines",
    "new_validator",
    "payload_problems_for_non_object",
    "validate_payload",
    "validate_with",
]

INVALID_PAYLOAD_HEADER = "TASK FAIL since the task payload is invalid. See errors:"

_ONE_OF = "Must validate one and only one schema (oneOf)"
_ANY_OF = "Must validate at least one schema (anyOf)"

# gojsonschema's wording for keywords whose message needs only the keyword's value.
_SIMPLE = {
    "minItems": "Array must have at least {} items",
    "maxItems": "Array must have at most {} items",
    "minLength": "String length must be greater than or equal to {}",
    "maxLength": "String length must be less than or equal to {}",
    "minProperties": "Must have at least {} properties",
    "maxProperties": "Must have at most {} properties",
    "minimum": "Must be greater than or equal to {}",
    "maximum": "Must be less than or equal to {}",
    "exclusiveMinimum": "Must be greater than {}",
    "exclusiveMaximum": "Must be less than {}",
    "multipleOf": "Must be a multiple of {}",
    "pattern": "Does not match pattern '{}'",
    "format": "Does not match format '{}'",
}

PathKey = tuple[tuple[int, int | str], ...]
_Problem = tuple[PathKey, int, str]


def payload_problems_for_non_object(payload: object) -> list[str]:
    """Return the one problem of a payload that is not a JSON object, or ``[]`` if it is one.

    Worded as gojsonschema words a type mismatch at the top level, e.g.
    ``(root): Invalid type. Expected: object, given: array``.
    """
    if isinstance(payload, dict):
        return []
    return [f"(root): Invalid type. Expected: object, given: {_json_type(payload)}"]


def validate_payload(payload: object, engine: Engine) -> list[str]:
    """Check ``payload`` against the schema of ``engine``; return every problem, or ``[]``.

    Each problem reads ``<field>: <description>`` in gojsonschema's wording, for example
    ``onExitStatus.retry.0: Must be greater than or equal to 1``. They are sorted by field (array
    indices numerically), a ``oneOf`` line before the details that explain it.
    """
    not_object = payload_problems_for_non_object(payload)
    if not_object:
        return not_object
    validator = _validator(Engine(engine))
    problems = sorted(set(_describe(list(validator.iter_errors(payload)), validator.schema)))
    return [f"{_field(path)}: {message}" for path, _rank, message in problems]


def validate_with(payload: object, validator: Draft6Validator) -> list[str]:
    """Like `validate_payload`, against another schema's validator (d2g's docker-worker schema)."""
    not_object = payload_problems_for_non_object(payload)
    if not_object:
        return not_object
    problems = sorted(set(_describe(list(validator.iter_errors(payload)), validator.schema)))
    return [f"{_field(path)}: {message}" for path, _rank, message in problems]


def new_validator(schema: Mapping[str, Any]) -> Draft6Validator:
    """A validator for `schema` with the payload format checks (`date-time`, `uri`)."""
    return Draft6Validator(schema, format_checker=payload_format_checker())


def invalid_payload_log_lines(problems: Sequence[str]) -> list[str]:
    """Return the seed's log lines for an invalid payload: the header, then ``- <problem>`` each."""
    return [INVALID_PAYLOAD_HEADER, *(f"- {problem}" for problem in problems)]


@cache
def _validator(engine: Engine) -> Draft6Validator:
    """Build (once per engine) the validator with our ``date-time`` and ``uri`` format checks."""
    return Draft6Validator(load_schema(engine), format_checker=payload_format_checker())


def _describe(errors: list[ValidationError], root: Mapping[str, Any]) -> Iterator[_Problem]:
    """Turn jsonschema errors (all from one schema level) into gojsonschema-worded problems."""
    # gojsonschema stops checking a value as soon as its type is wrong; jsonschema goes on with
    # the other keywords (an enum, a pattern...), which would only repeat the type problem.
    mistyped = {tuple(e.absolute_path) for e in errors if e.validator == "type"}
    for error in errors:
        path = tuple(error.absolute_path)
        if error.validator != "type" and path in mistyped:
            continue
        key = _path_key(path)
        if error.validator in ("oneOf", "anyOf"):
            yield key, 0, _ONE_OF if error.validator == "oneOf" else _ANY_OF
            yield from _describe(_best_branch(error, root), root)
        else:
            for message in _messages(error, path):
                yield key, 1, message


def _best_branch(error: ValidationError, root: Mapping[str, Any]) -> list[ValidationError]:
    """Return the errors of the ``oneOf``/``anyOf`` branch the author most likely meant.

    A bare "Must validate one and only one schema" does not say what is wrong with a mount or its
    content, so, like gojsonschema, we add the errors of the closest branch. gojsonschema picks
    it by an internal score; we pick the branch declaring most of the keys the value has (a
    content with ``taskId`` and ``artifact`` is meant as artifact content even with a misspelt
    ``sha356``), then the one with fewest errors, then the first. When several branches matched
    (``context`` is empty) there is nothing to add.
    """
    by_branch: dict[int, list[ValidationError]] = {}
    for sub in error.context or ():
        by_branch.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    if not by_branch:
        return []
    branches: Sequence[Mapping[str, Any]] = error.validator_value
    keys = set(error.instance) if isinstance(error.instance, dict) else set()

    def rank(index: int) -> tuple[int, int, int]:
        declared = _resolve(branches[index], root).get("properties", {})
        return (-len(keys & set(declared)), len(by_branch[index]), index)

    return by_branch[min(by_branch, key=rank)]


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow local ``$ref`` pointers (``#/definitions/...``) within our own schema."""
    while "$ref" in schema:
        node: Any = root
        for part in str(schema["$ref"]).removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _messages(error: ValidationError, path: tuple[int | str, ...]) -> Iterable[str]:
    """Word one jsonschema error as gojsonschema would (some keywords give several lines)."""
    keyword, value, instance = error.validator, error.validator_value, error.instance
    if keyword in _SIMPLE:
        return [_SIMPLE[str(keyword)].format(_number(value))]
    if keyword == "required":
        return [f"{name} is required" for name in value if name not in instance]
    if keyword == "additionalProperties":
        return [f"Additional property {name} is not allowed" for name in _extra_keys(error)]
    if keyword == "type":
        expected = value if isinstance(value, str) else ", ".join(value)
        return [f"Invalid type. Expected: {expected}, given: {_json_type(instance)}"]
    if keyword == "enum":
        allowed = ", ".join(go_json_dumps(v) for v in value)
        return [f"{_field(path)} must be one of the following: {allowed}"]
    if keyword == "const":
        return [f"{_field(path)} does not match: {go_json_dumps(value)}"]
    if keyword == "uniqueItems":
        return [f"array items[{i},{j}] must be unique" for i, j in _duplicate_pairs(instance)]
    if keyword == "dependencies":
        return [f"Has a dependency on {d}" for d in _missing_dependencies(value, instance)]
    if keyword == "not":
        return ["Must not validate the schema (not)"]
    return [error.message]


def _extra_keys(error: ValidationError) -> list[str]:
    """Keys of the object that neither ``properties`` nor ``patternProperties`` allow."""
    declared = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
    patterns = error.schema.get("patternProperties", {}) if isinstance(error.schema, dict) else {}
    return [
        key for key in error.instance if key not in declared and not any(re.search(p, key) for p in patterns)
    ]


def _missing_dependencies(dependencies: Mapping[str, Any], instance: object) -> list[str]:
    """Keys required by a present key's array dependency but absent from the object."""
    if not isinstance(instance, dict):
        return []
    return [
        needed
        for key, needs in dependencies.items()
        if key in instance and isinstance(needs, list)
        for needed in needs
        if needed not in instance
    ]


def _duplicate_pairs(items: Sequence[object]) -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` as gojsonschema reports them: each repeat ``j`` with the latest equal ``i``.

    Values compare as JSON, with every number as a float (``1`` equals ``1.0``), as gojsonschema
    compares them.
    """
    seen: dict[str, int] = {}
    pairs = []
    for j, item in enumerate(items):
        text = json.dumps(_floats(item), sort_keys=True)
        if text in seen:
            pairs.append((seen[text], j))
        seen[text] = j
    return pairs


def _floats(value: object) -> object:
    """Copy a JSON value with every number turned into a float."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return value


def _json_type(value: object) -> str:
    """Name the JSON type of a value as gojsonschema does (``integer`` for a whole number)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _number(value: object) -> object:
    """Show a whole float without its ``.0``, as Go prints schema numbers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _path_key(path: tuple[int | str, ...]) -> PathKey:
    """Sort key of a path: array indices numerically, property names alphabetically."""
    return tuple((0, part) if isinstance(part, int) else (1, part) for part in path)


def _field(path: tuple[int | str, ...] | PathKey) -> str:
    """Render a path (or its sort key) as gojsonschema's field: ``a.0.b``, or ``(root)``."""
    parts = [part[1] if isinstance(part, tuple) else part for part in path]
    return ".".join(str(part) for part in parts) if parts else "(root)"
