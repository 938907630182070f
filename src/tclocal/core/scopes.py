"""Scopes: upstream's satisfaction rules and scope-expression templates.

A scope pattern ending in `*` satisfies every scope that starts with what precedes the `*`;
otherwise only the identical scope. An expression is a scope string, `{"AllOf": [...]}` or
`{"AnyOf": [...]}`. API references declare *templates*: strings with `<param>` placeholders,
`{"for": p, "in": list, "each": template}` and `{"if": flag, "then": t, "else": t}`, rendered
with the request's parameters before checking (libraries/api's ScopeExpressionTemplate).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

Expression: TypeAlias = "str | dict[str, list[Any]]"
Template: TypeAlias = "str | dict[str, Any]"

_PARAM = re.compile(r"<([a-zA-Z][a-zA-Z0-9_.]*)>")
VALID_SCOPE = re.compile(r"^[\x20-\x7e]*$")


def pattern_match(pattern: str, scope: str) -> bool:
    """True when the scope pattern `pattern` satisfies the scope `scope`."""
    if pattern == scope:
        return True
    return pattern.endswith("*") and scope.startswith(pattern[:-1])


def has_scope(scopeset: Iterable[str], scope: str) -> bool:
    """True when some pattern of `scopeset` satisfies `scope`."""
    return any(pattern_match(p, scope) for p in scopeset)


def satisfies(scopeset: Sequence[str], expression: Expression) -> bool:
    """True when `scopeset` satisfies the (rendered) scope expression."""
    if isinstance(expression, str):
        return has_scope(scopeset, expression)
    if "AllOf" in expression:
        return all(satisfies(scopeset, e) for e in expression["AllOf"])
    if "AnyOf" in expression:
        return any(satisfies(scopeset, e) for e in expression["AnyOf"])
    raise ValueError(f"not a scope expression: {expression!r}")


def unsatisfied(scopeset: Sequence[str], expression: Expression) -> Expression | None:
    """Return the part of `expression` that `scopeset` does not satisfy (None if all is).

    Used only to explain a 403, like upstream's removeGivenScopes.
    """
    if isinstance(expression, str):
        return None if has_scope(scopeset, expression) else expression
    if "AllOf" in expression:
        rest = [r for r in (unsatisfied(scopeset, e) for e in expression["AllOf"]) if r is not None]
        if not rest:
            return None
        return rest[0] if len(rest) == 1 else {"AllOf": rest}
    anyof = [unsatisfied(scopeset, e) for e in expression["AnyOf"]]
    if any(r is None for r in anyof):
        return None
    return anyof[0] if len(anyof) == 1 else {"AnyOf": anyof}


def _lookup(params: Mapping[str, Any], name: str) -> Any:
    """Find a (possibly dotted) parameter, as upstream allows `<foo.bar>`."""
    value: Any = params
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(name)
        value = value[part]
    return value


def _render_string(template: str, params: Mapping[str, Any]) -> str:
    def sub(match: re.Match[str]) -> str:
        value = _lookup(params, match.group(1))
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise KeyError(match.group(1))
        return str(value)

    return _PARAM.sub(sub, template)


def _render_list(items: list[Any], params: Mapping[str, Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        rendered = _render(item, params)
        if isinstance(rendered, list):
            out.extend(rendered)
        elif rendered is not None:
            out.append(rendered)
    return out


def _render(template: Any, params: Mapping[str, Any]) -> Any:
    if isinstance(template, str):
        return _render_string(template, params)
    if "AllOf" in template:
        return {"AllOf": _render_list(template["AllOf"], params)}
    if "AnyOf" in template:
        return {"AnyOf": _render_list(template["AnyOf"], params)}
    if "for" in template:
        values = _lookup(params, template["in"])
        if not isinstance(values, list):
            raise KeyError(template["in"])
        return [_render(template["each"], {**params, template["for"]: v}) for v in values]
    if "if" in template:
        flag = _lookup(params, template["if"])
        if not isinstance(flag, bool):
            raise KeyError(template["if"])
        if flag:
            return _render(template["then"], params)
        return _render(template["else"], params) if "else" in template else None
    raise ValueError(f"not a scope expression template: {template!r}")


def render(template: Template, params: Mapping[str, Any]) -> Expression | None:
    """Render a template with `params`; None means no scopes are needed (a public request).

    Raises KeyError naming the first parameter that is missing or of the wrong type.
    """
    result = _render(template, params)
    if isinstance(result, list):
        return {"AllOf": result}
    return result  # type: ignore[no-any-return]


def template_params(template: Template) -> set[str]:
    """The top-level parameter names a template needs (to tell whether URL params suffice)."""
    if isinstance(template, str):
        return {m.split(".")[0] for m in _PARAM.findall(template)}
    if "AllOf" in template or "AnyOf" in template:
        items = template.get("AllOf") or template.get("AnyOf") or []
        return set().union(*(template_params(t) for t in items))
    if "for" in template:
        return ({template["in"]} | template_params(template["each"])) - {template["for"]}
    if "if" in template:
        names = {template["if"]} | template_params(template["then"])
        return names | (template_params(template["else"]) if "else" in template else set())
    raise ValueError(f"not a scope expression template: {template!r}")


def normalize(scopes: Iterable[str]) -> list[str]:
    """Sort and deduplicate, dropping scopes already covered by a `*` pattern in the set."""
    unique = sorted(set(scopes))
    stars = [s[:-1] for s in unique if s.endswith("*")]
    out: list[str] = []
    for scope in unique:
        # A pattern `x*` is covered by `p*` when x starts with p; a plain scope when it does.
        reach = scope[:-1] if scope.endswith("*") else scope
        covered = any(reach.startswith(prefix) and scope != prefix + "*" for prefix in stars)
        if not covered:
            out.append(scope)
    return out
