"""Scopes: upstream's satisfaction rules and scope-expression templates.

A scope pattern ending in `*` satisfies every scope that starts with what precedes the `*`;
otherwise only the identical scope. An expression is a scope string, `{"AllOf": [...]}` or
`{"AnyOf": [...]}`. API references declare *templates*: strings with `<param>` placeholders,
`{"for": p, "in": list, "each": template}` and `{"if": flag, "then": t, "else": t}`, rendered
with the request's parameters before checking (libraries/api's ScopeExpressionTemplate). A
parameter name is a letter then letters, digits or `_`; anything else between `<` and `>` (such
as `<a.b>`) is literal text. A parameter may be a string or a number, and numbers render as
JavaScript prints them (`1.0` -> `1`, `1e21` -> `1e+21`).

Scope sets are ordered as upstream's `scopeCompare`: by UTF-16 code unit, a trailing `*` sorting
just before the end of the string (`a*` < `a` < `a(`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeAlias

Expression: TypeAlias = "str | dict[str, list[Any]]"
Template: TypeAlias = "str | dict[str, Any]"

_PARAM = re.compile(r"<([a-zA-Z][a-zA-Z0-9_]*)>")
# `\Z`, not `$`: Python's `$` also matches before a final newline, and `abc\n` is no scope.
VALID_SCOPE = re.compile(r"[\x20-\x7e]*\Z")
_MAX_SAFE_INTEGER = 2**53


def valid_scope(scope: object) -> bool:
    """True for a string of printable ASCII characters (upstream's validScope)."""
    return isinstance(scope, str) and VALID_SCOPE.match(scope) is not None


def scope_sort_key(scope: str) -> tuple[bytes, bool]:
    """Sort key of upstream's scopeCompare: UTF-16 order, a trailing `*` just before the end."""
    star = scope.endswith("*")
    stem = scope[:-1] if star else scope
    return stem.encode("utf-16-be", "surrogatepass"), not star


def sort_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes in scopeCompare order (duplicates and covered scopes kept)."""
    return sorted(scopes, key=scope_sort_key)


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


def _js_number(value: int | float) -> str:
    """Format a number as JavaScript's String(number) does (JSON numbers are doubles there)."""
    if isinstance(value, int) and abs(value) < _MAX_SAFE_INTEGER:
        return str(value)
    number = float(value)
    if number == 0:
        return "0"
    if number != number or number in (float("inf"), float("-inf")):  # json.loads takes NaN, Infinity
        return "NaN" if number != number else ("Infinity" if number > 0 else "-Infinity")
    sign = "-" if number < 0 else ""
    # repr gives the shortest round-tripping digits, as ECMAScript's Number::toString does.
    _, digits_t, exponent = Decimal(repr(abs(number))).normalize().as_tuple()
    digits = "".join(map(str, digits_t))
    k = len(digits)
    n = k + int(exponent)  # the decimal point sits after `n` digits
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
        text = f"{mantissa}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"
    return sign + text


def _param(params: Mapping[str, Any], name: str) -> Any:
    if name not in params:
        raise KeyError(name)
    return params[name]


def _render_string(template: str, params: Mapping[str, Any]) -> str:
    def sub(match: re.Match[str]) -> str:
        value = _param(params, match.group(1))
        if isinstance(value, str):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise KeyError(match.group(1))
        return _js_number(value)

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
        values = _param(params, template["in"])
        if not isinstance(values, list):
            raise KeyError(template["in"])
        return [_render(template["each"], {**params, template["for"]: v}) for v in values]
    if "if" in template:
        flag = _param(params, template["if"])
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
        return set(_PARAM.findall(template))
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
    """Sort (scopeCompare) and deduplicate, dropping scopes a `*` pattern in the set covers.

    In scopeCompare order a pattern `p*` comes right before every scope starting with `p`,
    so one pass keeping a scope unless the last kept pattern covers it suffices.
    """
    out: list[str] = []
    prefix: str | None = None
    for scope in sort_scopes(set(scopes)):
        if prefix is not None and scope.startswith(prefix):
            continue
        out.append(scope)
        prefix = scope[:-1] if scope.endswith("*") else None
    return out
