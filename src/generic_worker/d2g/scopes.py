"""Scopes of a d2g task: docker-worker capability scopes checked, then mapped to native scopes.

As upstream: privileged, disableSeccomp, host shared memory, KVM, loopback audio/video devices and
ptrace each need their `docker-worker:...` scope (some also accept the form ending in the task
queue); a task without them is `malformed-payload` with upstream's text. The task's scopes
(expanded through the auth service) then map to native ones: every `docker-worker:X` gives
`generic-worker:X` (so `docker-worker:cache:foo` grants the cache `foo`), device scopes give the
loopback and `kvm`/`libvirt` OS-group scopes, and `generic-worker:os-group:<queue>/docker` is
always added. The result is sorted, as upstream's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from generic_worker.engine.feature import ScopeRequirement
from generic_worker.engine.scopes import render_given, satisfied

_CAP = "docker-worker:capability:"


def required_scopes(dw: Mapping[str, Any], queue: str) -> list[ScopeRequirement]:
    """Every requirement the docker-worker payload's capabilities and features put on the task."""
    capabilities = dw.get("capabilities") or {}
    devices = capabilities.get("devices") or {}
    features = dw.get("features") or {}
    needed: list[ScopeRequirement] = []

    def either(scope: str) -> ScopeRequirement:
        return [[scope], [f"{scope}:{queue}"]]

    if capabilities.get("privileged"):
        needed.append(either(f"{_CAP}privileged"))
    if capabilities.get("disableSeccomp"):
        needed.append([[f"{_CAP}disableSeccomp"]])
    for device in ("hostSharedMemory", "kvm", "loopbackAudio", "loopbackVideo"):
        if devices.get(device):
            needed.append(either(f"{_CAP}device:{device}"))
    if features.get("allowPtrace"):
        needed.append([["docker-worker:feature:allowPtrace"]])
    return needed


def render_requirement(requirement: ScopeRequirement) -> str:
    """Upstream's rendering: one alternative's scopes joined `, and`; alternatives `, or` per line."""
    if len(requirement) == 1:
        return ", and\n".join(requirement[0])
    return ", or\n".join(alt[0] if len(alt) == 1 else "(" + " and ".join(alt) + ")" for alt in requirement)


def missing_scopes_error(dw: Mapping[str, Any], queue: str, expanded: Sequence[str]) -> str | None:
    """Upstream's malformed-payload text when the task lacks capability scopes, else None."""
    missing = [req for req in required_scopes(dw, queue) if not satisfied(expanded, req)]
    if not missing:
        return None
    required = "\nAND\n".join(f"({render_requirement(req)})" for req in missing)
    return (
        f"d2g task requires scopes:\n\n{required}\n\nbut task only has scopes:\n\n"
        f"{render_given(expanded)}\n\nYou probably should add some scopes to your task definition"
    )


def convert_scopes(original: Sequence[str], expanded: Sequence[str], queue: str) -> list[str]:
    """The native scopes of a d2g task: the original ones plus the mapped expanded ones, sorted."""
    result = [*original, f"generic-worker:os-group:{queue}/docker"]
    device = f"{_CAP}device:"
    for scope in expanded:
        if scope == f"{device}kvm":
            result += [f"generic-worker:os-group:{queue}/kvm", f"generic-worker:os-group:{queue}/libvirt"]
        elif scope.startswith(f"{device}kvm:"):
            pool = scope.removeprefix(f"{device}kvm:")
            result += [f"generic-worker:os-group:{pool}/kvm", f"generic-worker:os-group:{pool}/libvirt"]
        elif scope in (f"{device}loopbackVideo", f"{device}loopbackAudio"):
            kind = "video" if scope.endswith("Video") else "audio"
            result.append(f"generic-worker:loopback-{kind}:*")
        elif scope.startswith((f"{device}loopbackVideo:", f"{device}loopbackAudio:")):
            kind = "video" if "loopbackVideo:" in scope else "audio"
            result.append(f"generic-worker:loopback-{kind}:{scope.split(':', 4)[4]}")
        elif scope.startswith("docker-worker:"):
            result.append("generic-worker:" + scope.removeprefix("docker-worker:"))
    return sorted(result)
