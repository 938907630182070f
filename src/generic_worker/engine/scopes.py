"""Scope satisfaction for feature requirements, checked centrally by the engine.

A given scope satisfies a required one if equal, or if it ends with `*` and is a prefix of it.
When the direct check fails and the task has `assume:` scopes, they are expanded through the
auth service (`expandScopes`) and checked again; an auth failure is `resource-unavailable`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from generic_worker.engine.feature import ScopeRequirement
from generic_worker.errors import TaskError
from generic_worker.tc import TC_ERRORS


def scope_matches(given: str, required: str) -> bool:
    """True if one given scope grants the required scope."""
    return given == required or (given.endswith("*") and required.startswith(given[:-1]))


def satisfied(given: Sequence[str], requirement: ScopeRequirement) -> bool:
    """True if any alternative of the requirement is fully granted by `given`."""
    if not requirement:
        return True
    return any(all(any(scope_matches(g, r) for g in given) for r in alt) for alt in requirement)


def render_requirement(requirement: ScopeRequirement) -> str:
    """The seed's rendering: one line per scope ending `, and`; alternatives `(a and b), or` per line."""
    alternatives = [list(alt) for alt in requirement if alt]
    if not alternatives:
        return "<no scopes>"
    if len(alternatives) == 1:
        return ", and\n".join(alternatives[0])
    return ", or\n".join("(" + " and ".join(alt) + ")" for alt in alternatives)


def render_given(given: Sequence[str]) -> str:
    """The seed's rendering of the task's scopes: joined with ` and `."""
    return " and ".join(given) if given else "<no scopes>"


def missing_scopes_message(feature: str, requirement: ScopeRequirement, given: Sequence[str]) -> str:
    """The malformed-payload text for a feature whose scopes the task lacks."""
    return (
        f'Feature "{feature}" requires scopes:\n\n{render_requirement(requirement)}\n\n'
        f"but task only has scopes:\n\n{render_given(given)}\n\n"
        "You probably should add some scopes to your task definition"
    )


ExpandScopes = Callable[[list[str]], Awaitable[list[str]]]


class ScopeChecker:
    """Checks feature requirements against one task's scopes, expanding `assume:` at most once."""

    def __init__(self, task_scopes: Sequence[str], expand: ExpandScopes) -> None:
        self._given = list(task_scopes)
        self._expand = expand
        self._expanded: list[str] | None = None

    async def check(self, feature: str, requirement: ScopeRequirement) -> TaskError | None:
        """None if granted; malformed-payload if not; resource-unavailable if auth failed."""
        if satisfied(self._given, requirement):
            return None
        if any(s.startswith("assume:") for s in self._given):
            if self._expanded is None:
                try:
                    self._expanded = await self._expand(self._given)
                except TC_ERRORS as e:
                    return TaskError.resource_unavailable(
                        f"Could not expand task scopes with the auth service: {e}"
                    )
            if satisfied(self._expanded, requirement):
                return None
        return TaskError.malformed_payload(missing_scopes_message(feature, requirement, self._given))
