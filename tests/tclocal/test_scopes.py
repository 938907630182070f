"""Scope satisfaction, expression templates and role expansion (upstream's rules)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tclocal.core.roles import RoleResolver
from tclocal.core.scopes import normalize, pattern_match, render, satisfies, template_params, unsatisfied


@pytest.mark.parametrize(
    "pattern, scope, expected",
    [
        ("a:b", "a:b", True),
        ("a:*", "a:b", True),
        ("a:*", "a:", True),
        ("a*", "a", True),
        ("*", "anything", True),
        ("a:b", "a:bc", False),
        ("a:b*", "a:c", False),
        ("a:*b", "a:xb", False),  # only a trailing * is special
    ],
)
def test_pattern_match(pattern: str, scope: str, expected: bool) -> None:
    assert pattern_match(pattern, scope) is expected


def test_expressions() -> None:
    scopes = ["queue:create-task:*", "assume:x"]
    assert satisfies(scopes, {"AllOf": ["queue:create-task:a", {"AnyOf": ["nope", "assume:x"]}]})
    assert not satisfies(scopes, {"AnyOf": ["nope", {"AllOf": ["assume:x", "nope2"]}]})
    assert satisfies(scopes, {"AllOf": []})
    assert not satisfies(scopes, {"AnyOf": []})
    assert unsatisfied(scopes, {"AllOf": ["queue:create-task:a", "b", "c"]}) == {"AllOf": ["b", "c"]}
    assert unsatisfied(scopes, {"AnyOf": ["b", "assume:x"]}) is None


def test_render_templates() -> None:
    template: dict[str, Any] = {
        "AllOf": [
            {"for": "scope", "in": "scopes", "each": "<scope>"},
            "queue:scheduler-id:<schedulerId>",
            {"AnyOf": [{"for": "p", "in": "priorities", "each": "queue:create-task:<p>:<queue>"}]},
            {"if": "private", "then": "x:<taskId>:<a.b>", "else": "y"},
        ]
    }
    params = {
        "scopes": ["s1", "s2"],
        "schedulerId": "sch",
        "priorities": ["high", "low"],
        "queue": "p/w",
        "private": True,
        "taskId": "T",
    }
    assert render(template, params) == {
        "AllOf": [
            "s1",
            "s2",
            "queue:scheduler-id:sch",
            {"AnyOf": ["queue:create-task:high:p/w", "queue:create-task:low:p/w"]},
            "x:T:<a.b>",  # `<a.b>` is no parameter name: literal text, as upstream
        ]
    }
    assert template_params(template) == {"scopes", "schedulerId", "priorities", "queue", "private", "taskId"}
    assert render({"if": "public", "then": "a"}, {"public": False}) is None
    with pytest.raises(KeyError):
        render("a:<missing>", {})


def test_role_expansion() -> None:
    resolver = RoleResolver(
        {
            "project:a": ["scope:a", "assume:project:b"],
            "project:b": ["scope:b"],
            "repo:github.com/*": ["secrets:get:repo/<..>/ci", "queue:route:<..>"],
            "worker-pool:*": ["queue:claim-work:<..>"],
        }
    )
    assert resolver.expand(["assume:project:a"]) == [
        "assume:project:a",
        "assume:project:b",
        "scope:a",
        "scope:b",
    ]
    expanded = resolver.expand(["assume:repo:github.com/org/repo"])
    assert "secrets:get:repo/org/repo/ci" in expanded and "queue:route:org/repo" in expanded
    starred = resolver.expand(["assume:repo:github.com/org/*"])
    assert "secrets:get:repo/org/*" in starred  # `*` parameters swallow the rest of the scope
    assert "scope:a" in resolver.expand(["assume:project:*"])
    assert "queue:claim-work:p/w" in resolver.expand(["assume:worker-pool:p/w"])
    everything = resolver.expand(["*"])
    assert everything == ["*"]
    resolver.set_roles({})
    assert resolver.expand(["assume:project:a"]) == ["assume:project:a"]


def test_normalize_drops_covered_scopes() -> None:
    assert normalize(["a:b", "a:*", "b", "a:*", "c*", "cd"]) == ["a:*", "b", "c*"]


scope_text = st.text(alphabet="ab:*", max_size=6)


@given(st.lists(scope_text, max_size=6), scope_text)
def test_normalize_keeps_what_is_satisfied(scopes: list[str], probe: str) -> None:
    assert satisfies(scopes, probe) == satisfies(normalize(scopes), probe)
