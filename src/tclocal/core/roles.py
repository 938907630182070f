"""Roles: what `assume:<roleId>` scopes grant, and which role sets may be stored (upstream's rules).

Matching a scope `s` against the role pattern `P = "assume:" + roleId` (`q` is `s` without a
trailing `*`, which makes `s` a *kleene* scope):

- a role without a final `*` is granted when `s == P`, or when `s` is kleene and `P` starts with
  `q` (`assume:*`, `*`, `assu*` grant every role);
- a role `R*` is granted when `q` starts with `R`, with parameter `s[len(R):]` (which ends in
  `*` when `s` is kleene), or when `s` is kleene and `R` starts with `q`, with parameter `*`.

The parameter replaces `<..>` in the role's scopes; a parameter ending in `*` replaces `<..>` and
everything after it (so `assume:repo:**` with `repo:*` -> `secrets:get:<..>` gives
`secrets:get:**`). A role's scopes are granted, then expanded in turn, until nothing new appears.

Upstream refuses, when a role is written, role sets whose expansion could not end: a `*` role
whose scope uses `<..>` twice or ends with `*<..>` (InvalidScopeError), and any dependency cycle,
assuming the worst parameter `*` (DependencyCycleError). The resolver only ever holds a set that
passed this check, so expansion always ends; a cap on its size guards the rest.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tclocal.core.scopes import normalize

ASSUME = "assume:"
PARAM = "<..>"
_MARK = "\x1a"  # stands for the first `<..>` while checking, as no scope may contain it
_CACHE_SIZE = 4096
MAX_EXPANSION = 200_000
"""Scopes one expansion may produce before it is refused (only exponential role sets get there)."""


class RoleError(Exception):
    """A role set upstream refuses: `code` is InvalidScopeError or DependencyCycleError."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class ExpansionTooLarge(Exception):
    """An expansion grew past MAX_EXPANSION scopes."""


@dataclass(frozen=True)
class _Rule:
    """One role as a rule: its pattern stem, whether it ends in `*`, its scopes split by `<..>`."""

    role_id: str
    stem: str  # "assume:" + roleId without its final `*`
    star: bool
    plain: tuple[str, ...]
    paramed: tuple[str, ...] = field(default=())


def _rule(role_id: str, scopes: Iterable[str]) -> _Rule:
    pattern = ASSUME + role_id
    scopes = list(scopes)
    if not pattern.endswith("*"):
        return _Rule(role_id, pattern, False, tuple(scopes))
    plain = tuple(s for s in scopes if PARAM not in s)
    paramed = tuple(s for s in scopes if PARAM in s)
    return _Rule(role_id, pattern[:-1], True, plain, paramed)


def substitute(scope: str, param: str) -> str:
    """Put a role parameter in place of `<..>`; a `*` parameter also replaces what follows."""
    index = scope.find(PARAM)
    if index < 0:
        return scope
    if param.endswith("*"):
        return scope[:index] + param
    return scope[:index] + param + scope[index + len(PARAM) :]


class _Index:
    """The rules, indexed for the two questions matching asks: `P == x` / `P` starts with `q`."""

    def __init__(self, rules: Sequence[_Rule]) -> None:
        self.rules = list(rules)
        self._exact: dict[str, list[int]] = {}
        self._star: dict[str, list[int]] = {}
        for i, rule in enumerate(self.rules):
            (self._star if rule.star else self._exact).setdefault(rule.stem, []).append(i)
        self._stems = sorted((rule.stem, i) for i, rule in enumerate(self.rules))
        self._lengths = sorted({len(stem) for stem in self._star})

    def matches(self, scope: str) -> Iterator[tuple[int, str | None]]:
        """Yield `(rule index, parameter)` for each rule that `scope` grants."""
        kleene = scope.endswith("*")
        q = scope[:-1] if kleene else scope
        if not kleene:
            yield from ((i, None) for i in self._exact.get(q, ()))
        for length in self._lengths:
            if length > len(q):
                break
            for i in self._star.get(q[:length], ()):
                yield i, scope[length:]
        if kleene:
            # Every rule whose stem starts with `q` (except `*` rules whose stem is `q`, done above).
            start = bisect.bisect_left(self._stems, (q, -1))
            for stem, i in self._stems[start:]:
                if not stem.startswith(q):
                    break
                rule = self.rules[i]
                if not rule.star:
                    yield i, None
                elif stem != q:
                    yield i, "*"


def _checked(rule: _Rule) -> tuple[list[str], list[str]]:
    """The scopes a rule's dependencies are found from (parameter `*`), or InvalidScopeError."""
    plain = normalize(rule.plain)
    marked = normalize(s.replace(PARAM, _MARK, 1) for s in rule.paramed)
    for scope in marked:
        original = scope.replace(_MARK, PARAM)
        if PARAM in scope:
            raise RoleError(
                "InvalidScopeError",
                f"parameterized scope '{original}' contains multiple '<..>'",
                scope=original,
            )
        if scope.endswith("*" + _MARK):
            raise RoleError(
                "InvalidScopeError",
                f"parameterized scope '{original}' ends with '*<..>' which implies an ambiguous kleene",
                scope=original,
            )
    worst = normalize(s[: s.index(_MARK)] + "*" for s in marked)
    return plain, worst


def check_roles(roles: Sequence[tuple[str, Sequence[str]]]) -> None:
    """Raise RoleError unless upstream would accept this role set (in this order).

    Dependencies are followed depth first in upstream's order, so the cycle reported is the
    one upstream reports for the same ordered set: every role entered since the first role of
    the cycle, finished ones included, then that role again.
    """
    rules = [_rule(role_id, scopes) for role_id, scopes in roles]
    sources = [_checked(rule) for rule in rules]
    index = _Index(rules)

    def dependencies(i: int) -> list[int]:
        plain, worst = sources[i]
        out: dict[int, None] = {}
        for scope in [*plain, *worst]:
            # Upstream collects matching rule numbers as a scope set: sorted as strings.
            for j in sorted({j for j, _ in index.matches(scope)}, key=str):
                out.setdefault(j, None)
        return list(out)

    done: set[int] = set()
    entered: dict[int, int] = {}  # rule -> when it was entered (dicts keep insertion order)
    for root in range(len(rules)):
        if root in done:
            continue
        stack: list[tuple[int, Iterator[int]]] = [(root, iter(dependencies(root)))]
        on_stack = {root}
        entered[root] = len(entered)
        while stack:
            node, pending = stack[-1]
            child = next(pending, None)
            if child is None:
                stack.pop()
                on_stack.discard(node)
                done.add(node)
            elif child in on_stack:
                since = list(entered)[entered[child] :]
                cycle = [ASSUME + rules[n].role_id for n in [*since, child]]
                raise RoleError(
                    "DependencyCycleError",
                    "Roles may not contain dependency cycles, found: '" + "' -> '".join(cycle) + "'",
                    cycle=cycle,
                )
            elif child not in done:
                stack.append((child, iter(dependencies(child))))
                on_stack.add(child)
                entered[child] = len(entered)


def acceptable_subset(
    roles: Mapping[str, Sequence[str]],
) -> tuple[dict[str, list[str]], dict[str, RoleError]]:
    """Split a stored role table into a set upstream would accept and the roles left out.

    Roles are taken in id order; one that would make the set unacceptable is left out (with
    why), so a table written before these checks still expands, and always finitely.
    """
    ordered = [(role_id, list(roles[role_id])) for role_id in sorted(roles)]
    try:
        check_roles(ordered)
        return dict(ordered), {}
    except RoleError:
        pass
    kept: list[tuple[str, list[str]]] = []
    refused: dict[str, RoleError] = {}
    for role_id, scopes in ordered:
        try:
            check_roles([*kept, (role_id, scopes)])
        except RoleError as err:
            refused[role_id] = err
            continue
        kept.append((role_id, scopes))
    return dict(kept), refused


class RoleResolver:
    """Expands scope sets through the current roles; caches results until the roles change."""

    def __init__(self, roles: Mapping[str, Sequence[str]] | None = None, limit: int = MAX_EXPANSION) -> None:
        self._limit = limit
        self._index = _Index([])
        self._cache: dict[tuple[str, ...], list[str]] = {}
        self.set_roles(roles or {})

    def set_roles(self, roles: Mapping[str, Sequence[str]]) -> dict[str, RoleError]:
        """Replace the role table; return the roles left out as unacceptable (normally none)."""
        kept, refused = acceptable_subset(roles)
        self._index = _Index([_rule(role_id, scopes) for role_id, scopes in kept.items()])
        self._cache.clear()
        return refused

    def expand(self, scopes: Iterable[str]) -> list[str]:
        """Return the normalized closure of `scopes` under role assumption."""
        key = tuple(normalize(scopes))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        result = set(key)
        todo = list(key)
        seen: set[tuple[int, str | None]] = set()
        rules = self._index.rules
        while todo:
            for grant in self._index.matches(todo.pop()):
                if grant in seen:
                    continue
                seen.add(grant)
                i, param = grant
                rule = rules[i]
                granted = [*rule.plain, *(substitute(s, param or "") for s in rule.paramed)]
                for scope in granted:
                    if scope not in result:
                        result.add(scope)
                        todo.append(scope)
                if len(result) > self._limit:
                    raise ExpansionTooLarge(f"role expansion exceeds {self._limit} scopes")
        expanded = normalize(result)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = expanded
        return expanded
