"""The chain-of-trust certificate: what it says about a task run, and its exact bytes.

The certificate is upstream's version 1 document, which scriptworker downloads and checks for
release tasks:

    {"chainOfTrustVersion": 1, "artifacts": {<name>: {"sha256": <hex>}}, "task": <definition>,
     "taskId": ..., "runId": ..., "workerGroup": ..., "workerId": ..., "environment": {...}}

Bytes as upstream's Go encoder writes them (`json.MarshalIndent(cert, "", "  ")`): 2-space indent,
no trailing newline, top-level keys in that order, artifact names and the task definition's own
keys sorted (Go renders maps and the queue's task struct in alphabetical order), non-ASCII kept
as UTF-8, and `<`, `>`, `&`, U+2028 and U+2029 escaped as unicode escapes (Go's HTML-safe
escaping). The ed25519 signature covers exactly these bytes, so they must never be re-encoded.

When the task wrote `chain-of-trust-additional-data.json`, its object is deep-merged under the
certificate (the certificate's own values win at every level) and, as upstream, the merged
document is written with every object's keys sorted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from generic_worker.config import Config

CHAIN_OF_TRUST_VERSION = 1

_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
"""Go's encoder escapes these even in pretty output; they can only occur inside JSON strings."""

_SORTED_TASK_MEMBERS = ("metadata", "tags")
"""Members of the task definition that Go renders from a struct or map (keys in order)."""


@dataclass(frozen=True)
class RunIdentity:
    """Which run the certificate is about, and which worker ran it."""

    task_id: str
    run_id: int
    worker_group: str
    worker_id: str


def environment_of(config: Config, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The certificate's `environment`, from the worker's config, as upstream writes it.

    `extra` is what the worker itself adds (d2g's `imageHash`, `imageArtifactHash`): being part
    of the worker's document, the task's additional data can never change it.

    `publicIpAddress` is left out when `publicIP` is not set (upstream's `omitempty`); the
    other fields are always present, empty when not configured (where Go would write
    `"<nil>"` for a missing `privateIP`, we write "").
    """
    env: dict[str, str] = {}
    if config.public_ip:
        env["publicIpAddress"] = config.public_ip
    env["privateIpAddress"] = config.private_ip
    env["instanceId"] = config.instance_id
    env["instanceType"] = config.instance_type
    env["region"] = config.region
    env.update(extra or {})
    return env


def _task_in_go_order(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The task definition with its keys (and those of metadata and tags) sorted.

    `payload` and `extra` keep the order the queue sent them in (Go keeps them as raw JSON).
    """
    task: dict[str, Any] = {}
    for key in sorted(definition):
        value = definition[key]
        if key in _SORTED_TASK_MEMBERS and isinstance(value, dict):
            value = {k: value[k] for k in sorted(value)}
        task[key] = value
    return task


def build_certificate(
    run: RunIdentity,
    definition: Mapping[str, Any],
    artifact_hashes: Mapping[str, str],
    environment: Mapping[str, str],
) -> dict[str, Any]:
    """The certificate as a dict in upstream's member order.

    `definition` is the task definition from the claim; `artifact_hashes` maps artifact names
    to the hex sha256 of their content.
    """
    return {
        "chainOfTrustVersion": CHAIN_OF_TRUST_VERSION,
        "artifacts": {name: {"sha256": artifact_hashes[name]} for name in sorted(artifact_hashes)},
        "task": _task_in_go_order(definition),
        "taskId": run.task_id,
        "runId": run.run_id,
        "workerGroup": run.worker_group,
        "workerId": run.worker_id,
        "environment": dict(environment),
    }


def merge_under(base: Mapping[str, Any], winner: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `winner` over `base`: objects merge member by member, anything else in `winner` wins."""
    merged = dict(base)
    for key, value in winner.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = merge_under(below, value)
        else:
            merged[key] = value
    return merged


def with_additional_data(certificate: Mapping[str, Any], additional: Mapping[str, Any]) -> dict[str, Any]:
    """The certificate with the task's additional data merged under it (the certificate wins)."""
    return merge_under(additional, certificate)


def render(document: Mapping[str, Any], *, sort_keys: bool = False) -> bytes:
    """The exact bytes published as `public/chain-of-trust.json` (and signed)."""
    text = json.dumps(document, indent=2, ensure_ascii=False, sort_keys=sort_keys, allow_nan=False)
    for char, escaped in _GO_ESCAPES.items():
        text = text.replace(char, escaped)
    return text.encode("utf-8")
