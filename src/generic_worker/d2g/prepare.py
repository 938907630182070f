"""Payload validation of a docker-worker payload: schema, scopes, translation, output check.

Called by the payload validator when `d2gConfig.enableD2G` is on. Every refusal is a
`malformed-payload` (`DWPayloadRefused`) with upstream's text where upstream has one; the caller
logs it and resolves the task.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import quote

import slugid

from generic_worker.config.d2g import D2GConfig
from generic_worker.d2g.images import InvalidImage
from generic_worker.d2g.scopes import convert_scopes, missing_scopes_error
from generic_worker.d2g.task import D2GTask
from generic_worker.d2g.translate import translate
from generic_worker.payload import Engine
from generic_worker.payload.validate import new_validator, validate_payload, validate_with

CONTAINER_PREFIX = "taskcontainer_"


class DWPayloadRefused(Exception):
    """The docker-worker payload cannot run; `problems` are schema lines to log, if any."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


def d2g_disabled_message(root_url: str, pool: str) -> str:
    """Upstream's malformed-payload text for a docker-worker payload on a worker without d2g."""
    url = f"{root_url.rstrip('/')}/worker-manager/{quote(pool, safe='')}"
    return (
        f"docker worker payload detected, but D2G is not enabled on this worker pool ({pool}).\n"
        "If you need D2G to translate your Docker Worker payload so Generic Worker can process it, "
        "please do one of two things:\n"
        f"\t1. Contact the owner of the worker pool {pool} (see {url}) and ask for D2G to be enabled.\n"
        "\t2. Use a worker pool that already allows docker worker payloads "
        '(search for "enableD2G": "true" in the worker pool definition)'
    )


@cache
def _schema_text() -> str:
    return resources.files(__package__).joinpath("docker_worker_payload.json").read_text(encoding="utf-8")


def docker_worker_schema() -> dict[str, Any]:
    """The docker-worker payload schema (a fresh copy)."""
    schema: dict[str, Any] = json.loads(_schema_text())
    return schema


def task_queue_id(definition: Mapping[str, Any]) -> str:
    """`taskQueueId`, or `provisionerId/workerType` of older definitions."""
    queue = definition.get("taskQueueId")
    if isinstance(queue, str) and queue:
        return queue
    return f"{definition.get('provisionerId', '')}/{definition.get('workerType', '')}"


Expand = Callable[[list[str]], Awaitable[list[str]]]


async def prepare(
    definition: Mapping[str, Any], config: D2GConfig, engine: Engine, expand: Expand
) -> tuple[D2GTask, list[str]]:
    """Check and translate the task's docker-worker payload; return it and the native scopes.

    `expand` expands `assume:` scopes through the auth service (only called when there are some).
    """
    dw: dict[str, Any] = definition["payload"]
    problems = validate_with(dw, new_validator(docker_worker_schema()))
    if problems:
        raise DWPayloadRefused("Validation of docker worker payload failed", problems)
    queue = task_queue_id(definition)
    given = [str(s) for s in definition.get("scopes") or []]
    expanded = await expand(given) if any(s.startswith("assume:") for s in given) else given
    missing = missing_scopes_error(dw, queue, expanded)
    if missing:
        raise DWPayloadRefused(missing)
    devices = sorted(os.listdir("/dev")) if config.allow_gpus else []
    try:
        translation = translate(dw, config, CONTAINER_PREFIX + slugid.nice(), devices)
    except InvalidImage as e:
        raise DWPayloadRefused(f"cannot convert Docker Worker payload: {e}") from e
    output_problems = validate_payload(translation.payload, engine)
    if output_problems:
        raise DWPayloadRefused("d2g output validation failed: " + "; ".join(output_problems))
    task = D2GTask(translation, original_payload=dw, original_scopes=given)
    return task, convert_scopes(given, expanded, queue)
