"""Role expansion: what `assume:<roleId>` scopes grant, with upstream's rules.

- `assume:X` grants role `X`, and every role `R*` whose prefix `R` starts `X`; for such a role
  the rest of `X` after `R` is the *parameter*, substituted for `<..>` in the role's scopes.
- A pattern scope `assume:Q*` (or `*`, `assu*`, ...) grants every role whose `assume:` scope it
  matches, and every `R*` role whose prefix is shorter than `Q`; parameters then end in `*`,
  which replaces `<..>` *and everything after it* (the scope widens to a pattern).
- Expansion repeats until no new scope appears (roles may assume other roles).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from tclocal.core.scopes import normalize

_ASSUME = "assume:"
_PARAM = "<..>"
_CACHE_SIZE = 4096


def _with_param(scope: str, param: str | None) -> str:
    """Substitute a role parameter into one of the role's scopes."""
    if param is None or _PARAM not in scope:
        return scope
    index = scope.index(_PARAM)
    if param.endswith("*"):
        return scope[:index] + param
    return scope[:index] + param + scope[index + len(_PARAM) :]


class RoleResolver:
    """Expands scope sets through the current roles; caches results until the roles change."""

    def __init__(self, roles: Mapping[str, list[str]] | None = None) -> None:
        self._roles: dict[str, list[str]] = dict(roles or {})
        self._cache: dict[tuple[str, ...], list[str]] = {}

    def set_roles(self, roles: Mapping[str, list[str]]) -> None:
        """Replace the role table (after createRole/updateRole/deleteRole)."""
        self._roles = dict(roles)
        self._cache.clear()

    def _granted(self, scope: str) -> Iterator[tuple[str, str | None]]:
        """Yield `(roleId, parameter)` for each role that `scope` lets its holder assume."""
        if scope.endswith("*"):
            prefix = scope[:-1]
            if _ASSUME.startswith(prefix):
                for role_id in self._roles:
                    yield role_id, "*" if role_id.endswith("*") else None
                return
            if not prefix.startswith(_ASSUME):
                return
            wanted = prefix[len(_ASSUME) :]
            for role_id in self._roles:
                if role_id.startswith(wanted):
                    yield role_id, "*" if role_id.endswith("*") else None
                elif role_id.endswith("*") and wanted.startswith(role_id[:-1]):
                    yield role_id, wanted[len(role_id) - 1 :] + "*"
            return
        if not scope.startswith(_ASSUME):
            return
        wanted = scope[len(_ASSUME) :]
        for role_id in self._roles:
            if role_id == wanted:
                yield role_id, None
            elif role_id.endswith("*") and wanted.startswith(role_id[:-1]):
                yield role_id, wanted[len(role_id) - 1 :]

    def expand(self, scopes: Iterable[str]) -> list[str]:
        """Return the normalized closure of `scopes` under role assumption."""
        key = tuple(sorted(set(scopes)))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        result = set(key)
        todo = list(key)
        seen: set[tuple[str, str | None]] = set()
        while todo:
            for grant in self._granted(todo.pop()):
                if grant in seen:
                    continue
                seen.add(grant)
                role_id, param = grant
                for role_scope in self._roles[role_id]:
                    expanded = _with_param(role_scope, param)
                    if expanded not in result:
                        result.add(expanded)
                        todo.append(expanded)
        expanded_list = normalize(result)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = expanded_list
        return expanded_list
