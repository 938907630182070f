"""The task payload: our authored JSON schemas, one per engine, and how they are shown.

``validate.py`` checks a payload against them and words the problems as the seed did; ``model.py``
holds the typed view of a valid payload that the engine and the features read.
"""

from __future__ import annotations

import copy
import json
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

from generic_worker.payload.gojson import go_json_dumps

__all__ = ["Engine", "load_schema", "schema_json"]


class Engine(StrEnum):
    """The two ways of running a task, each with its own payload schema.

    ``insecure`` runs commands as the worker's own user (config ``runTasksAsCurrentUser: true``, the
    default); ``multiuser`` gives every task a fresh OS user.
    """

    INSECURE = "insecure"
    MULTIUSER = "multiuser"


@cache
def _schema_text(engine: Engine) -> str:
    """Read the packaged schema file of ``engine`` once."""
    name = f"{Engine(engine).value}_posix.json"
    return resources.files(__name__).joinpath("schemas", name).read_text(encoding="utf-8")


@cache
def _parsed_schema(engine: Engine) -> dict[str, Any]:
    """Parse the schema of ``engine`` once; shared, so never handed out without a copy."""
    schema: dict[str, Any] = json.loads(_schema_text(engine))
    return schema


def load_schema(engine: Engine) -> dict[str, Any]:
    """Return the payload schema of ``engine`` as a fresh dict (the file is read only once).

    A copy, so a caller that changes it cannot change what the validator or other callers see.
    """
    return copy.deepcopy(_parsed_schema(Engine(engine)))


def schema_json(engine: Engine) -> str:
    r"""Return the text ``generic-worker show-payload-schema`` prints for ``engine``.

    Keys sorted, two-space indentation and ``<``, ``>``, ``&`` escaped as ``\u003c``, ``\u003e``,
    ``\u0026``, exactly as the seed's Go encoder printed it. No trailing newline.
    """
    return go_json_dumps(_parsed_schema(Engine(engine)), indent=2)
