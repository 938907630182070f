"""Request-body validation against tc-local's own schema dicts (JSON Schema draft 6).

The schemas are authored in the service modules, following the structure of upstream's request
schemas; a test checks them against the upstream files. Every problem is reported at once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from typing import Any

from jsonschema import Draft6Validator, ValidationError, validators

from tclocal.core.errors import APIError

SLUGID = r"^[A-Za-z0-9_-]{8}[Q-T][A-Za-z0-9_-][CGKOSWaeimquy26-][A-Za-z0-9_-]{10}[AQgw]$"
IDENTIFIER = r"^([a-zA-Z0-9-_]*)$"
PROJECT_ID = r"^([a-zA-Z0-9._/-]*)$"
SCOPE = r"^[ -~]*$"


@functools.lru_cache(maxsize=256)
def ecma_regex(pattern: str) -> re.Pattern[str]:
    r"""Compile a JSON-schema / URL pattern so that `$` means the end of the string, as in JavaScript.

    Python's `$` also matches before a final newline, so `^[ -~]*$` would accept `abc\n`; each
    `$` outside a character class and not escaped becomes `\Z`.
    """
    return re.compile(rewrite_outside_classes(pattern, {"$": r"\Z"}))


def rewrite_outside_classes(pattern: str, replacements: Mapping[str, str]) -> str:
    """`pattern` with each unescaped character outside a character class replaced as given.

    For translating between JavaScript's and Python's spellings of the same regular expression.
    """
    out: list[str] = []
    escaped = in_class = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char in replacements:
            out.append(replacements[char])
            continue
        out.append(char)
    return "".join(out)


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


# Draft 6 with JavaScript's meaning of `$` in `pattern` (the schemas keep upstream's text).
_Draft6 = validators.extend(Draft6Validator, {"pattern": _pattern})

DATE_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
SCOPE_LIST: dict[str, Any] = {"type": "array", "items": {"type": "string", "pattern": SCOPE}}


def obj(required: list[str], **properties: Any) -> dict[str, Any]:
    """A closed object schema (`additionalProperties: false`), as upstream's request schemas are."""
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


class Validator:
    """A compiled schema that raises InputValidationError listing every problem."""

    def __init__(self, schema: dict[str, Any]) -> None:
        Draft6Validator.check_schema(schema)
        self.schema = schema
        self._validator = _Draft6(schema, format_checker=Draft6Validator.FORMAT_CHECKER)

    def check(self, value: Any) -> None:
        """Raise APIError(InputValidationError) unless `value` matches the schema."""
        problems = sorted(self._validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
        if not problems:
            return
        lines = [f"* {'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in problems]
        raise APIError(
            "InputValidationError",
            "Input does not match the request schema:\n{{problems}}",
            problems="\n".join(lines),
        )


class OneOfValidator(Validator):
    """A `oneOf` schema whose branches are told apart by one property (e.g. `storageType`).

    Checking only the branch the discriminator selects gives precise messages instead of
    jsonschema's "is not valid under any of the given schemas".
    """

    def __init__(self, discriminator: str, branches: dict[str, dict[str, Any]]) -> None:
        super().__init__({"oneOf": list(branches.values())})
        self.discriminator = discriminator
        self._branches = {name: Validator(schema) for name, schema in branches.items()}

    def check(self, value: Any) -> None:
        """Validate against the branch selected by the discriminator property."""
        kind = value.get(self.discriminator) if isinstance(value, dict) else None
        branch = self._branches.get(kind) if isinstance(kind, str) else None
        if branch is None:
            raise APIError(
                "InputValidationError",
                "Input does not match the request schema: `{{field}}` must be one of {{allowed}}",
                field=self.discriminator,
                allowed=sorted(self._branches),
            )
        branch.check(value)
