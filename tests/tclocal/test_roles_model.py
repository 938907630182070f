"""Role expansion and role-set checks against a small reference model of upstream's rules.

The model below is written from upstream's documentation of roles (docs/reference/platform/auth
/roles) and the errors its auth service gives; it is deliberately naive (a fixpoint over every
role, no index) so that it shares no code with tclocal.core.roles. Hypothesis compares the two on
random role sets over a tiny alphabet, where prefixes, stars and `<..>` collide often.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tclocal.auth.store import AuthStore, Role
from tclocal.core.db import Database
from tclocal.core.errors import APIError
from tclocal.core.roles import ExpansionTooLarge, RoleError, RoleResolver, check_roles
from tclocal.core.scopes import normalize, render, sort_scopes

# ---------------------------------------------------------------- the reference model

Roles = dict[str, list[str]]


def model_order(scope: str) -> tuple[list[int], int]:
    """scopeCompare: UTF-16 code units of the scope without a final `*`, then `*` first."""
    star = scope.endswith("*")
    text = scope[:-1] if star else scope
    units: list[int] = []
    for char in text:
        code = ord(char)
        if code > 0xFFFF:
            units += [0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)]
        else:
            units.append(code)
    return units, 0 if star else 1


def model_normal(scopes: Iterable[str]) -> list[str]:
    """Drop every scope another pattern `p*` of the set covers; order by scopeCompare.

    `p*` covers a scope whose text, less a final `*`, starts with p (so `*` covers `**`).
    """
    unique = set(scopes)

    def covered(s: str) -> bool:
        stem = s[:-1] if s.endswith("*") else s
        return any(t != s and t.endswith("*") and stem.startswith(t[:-1]) for t in unique)

    return sorted((s for s in unique if not covered(s)), key=model_order)


def model_grants(scope: str, role_id: str) -> tuple[bool, str]:
    """Does `scope` let its holder assume `role_id`; with what parameter."""
    pattern = "assume:" + role_id
    if scope.endswith("*"):
        # `x*` stands for every scope starting with x.
        given = scope[:-1]
        if pattern.endswith("*"):
            stem = pattern[:-1]
            if given.startswith(stem):
                return True, scope[len(stem) :]
            return stem.startswith(given), "*"
        return pattern.startswith(given), ""
    if pattern.endswith("*"):
        stem = pattern[:-1]
        return scope.startswith(stem), scope[len(stem) :]
    return scope == pattern, ""


def model_fill(scope: str, param: str) -> str:
    """`<..>` takes the parameter; a parameter ending in `*` also swallows the rest."""
    if "<..>" not in scope:
        return scope
    before, after = scope.split("<..>", 1)
    return before + param if param.endswith("*") else before + param + after


def model_expand(roles: Roles, scopes: list[str]) -> list[str]:
    """The fixpoint: keep granting until nothing new appears."""
    have = set(scopes)
    while True:
        new = set()
        for scope in have:
            for role_id, role_scopes in roles.items():
                ok, param = model_grants(scope, role_id)
                if ok:
                    star = role_id.endswith("*")
                    new |= {model_fill(s, param) if star else s for s in role_scopes}
        if new <= have:
            return model_normal(have)
        have |= new


def model_refusal(roles: Roles) -> str | None:
    """The error code upstream answers for this role set, or None when it accepts it."""
    for role_id, scopes in roles.items():
        if not role_id.endswith("*"):
            continue
        # Upstream first marks the first `<..>` and normalises the set, then checks what is left.
        marked = [s.replace("<..>", "\x1a", 1) for s in scopes if "<..>" in s]
        for s in model_normal(marked):
            if "<..>" in s or s.endswith("*\x1a"):
                return "InvalidScopeError"
    # R depends on S when R's scopes, with the worst parameter `*`, grant S.
    depends = {
        r: {
            s
            for s in roles
            for scope in roles[r]
            if model_grants(model_fill(scope, "*") if r.endswith("*") else scope, s)[0]
        }
        for r in roles
    }
    for start in roles:
        reached, todo = set(), list(depends[start])
        while todo:
            r = todo.pop()
            if r == start:
                return "DependencyCycleError"
            if r not in reached:
                reached.add(r)
                todo.extend(depends[r])
    return None


# ---------------------------------------------------------------- the comparison

word = st.text(alphabet="ab:*", max_size=3)
role_ids = st.text(alphabet="ab:*", min_size=1, max_size=3)


@st.composite
def role_scopes(draw: st.DrawFn) -> str:
    head = draw(st.sampled_from(["assume:", "assume:", "assume:a", "x:", "", "as"]))
    scope = head + draw(word)
    if draw(st.booleans()):
        scope += "<..>" + draw(word)
        if draw(st.integers(0, 9)) == 0:
            scope += "<..>"
    return scope


def queries(roles: Roles) -> st.SearchStrategy[list[str]]:
    """Scope sets likely to assume some of `roles`: their ids cut, extended or starred."""
    near = st.builds(
        lambda role_id, cut, tail: "assume:" + role_id.rstrip("*")[:cut] + tail,
        st.sampled_from(sorted(roles)),
        st.integers(0, 3),
        st.sampled_from(["", "", "*", "**", "a", "b:", "a*"]),
    )
    anything = st.one_of(
        st.sampled_from(["*", "a*", "assume*", "assume:*"]), st.builds("assume:{}".format, word)
    )
    return st.lists(st.one_of(near, near, anything, word), min_size=1, max_size=3)


role_sets = st.dictionaries(
    role_ids,
    st.lists(role_scopes(), min_size=1, max_size=3, unique=True).map(
        lambda ss: [s for s in ss if not s.endswith("**")]
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=400, deadline=None)
@given(role_sets, st.data())
def test_expansion_matches_the_reference_model(roles: Roles, data: st.DataObject) -> None:
    expected = model_refusal(roles)
    try:
        check_roles(sorted(roles.items()))
    except RoleError as err:
        assert err.code == expected, err.message
        return
    assert expected is None
    resolver = RoleResolver(roles)
    for query in data.draw(st.lists(queries(roles), min_size=1, max_size=3)):
        assert resolver.expand(query) == model_expand(roles, query)


@settings(max_examples=200, deadline=None)
@given(role_sets, st.lists(word, max_size=3), word)
def test_a_star_scope_grants_what_each_scope_it_covers_grants(
    roles: Roles, others: list[str], rest: str
) -> None:
    """`assume:x*` satisfies `assume:xy`, so its expansion must satisfy that one's."""
    resolver = RoleResolver(roles)  # an unacceptable set is cut to an acceptable one
    broad = resolver.expand(["assume:*"])
    for scope in resolver.expand([f"assume:{rest}", *others]):
        assert scope in others or any(
            p == scope or (p.endswith("*") and scope.startswith(p[:-1])) for p in broad
        )


# ---------------------------------------------------------------- upstream's own examples


def test_star_star_parameter_is_not_widened() -> None:
    resolver = RoleResolver({"repo:*": ["secrets:get:<..>"]})
    assert resolver.expand(["assume:repo:**"]) == ["assume:repo:**", "secrets:get:**"]
    assert resolver.expand(["assume:repo:*"]) == ["assume:repo:*", "secrets:get:*"]
    assert resolver.expand(["assume:repo:x"]) == ["assume:repo:x", "secrets:get:x"]


def test_star_parameter_swallows_the_rest_of_the_scope() -> None:
    roles = {"project-admin:*": ["auth:create-role:project-<..>/*", "secrets:get:project/<..>/*"]}
    assert RoleResolver(roles).expand(["assume:project-admin:ops*"]) == [
        "assume:project-admin:ops*",
        "auth:create-role:project-ops*",
        "secrets:get:project/ops*",
    ]


@pytest.mark.parametrize(
    "roles, code, message",
    [
        ({"a*": ["assume:a<..>b"]}, "DependencyCycleError", "found: 'assume:a*' -> 'assume:a*'"),
        (
            {"test*": ["assume:other<..>x"], "other*": ["assume:te<..>"]},
            "DependencyCycleError",
            "found: 'assume:other*' -> 'assume:test*' -> 'assume:other*'",
        ),
        (
            {"a*": ["x<..><..>"]},
            "InvalidScopeError",
            "parameterized scope 'x<..><..>' contains multiple '<..>'",
        ),
        ({"a*": ["x*<..>"]}, "InvalidScopeError", "ends with '*<..>' which implies an ambiguous kleene"),
    ],
)
def test_refused_role_sets(roles: Roles, code: str, message: str) -> None:
    with pytest.raises(RoleError) as err:
        check_roles(sorted(roles.items()))
    assert err.value.code == code
    assert message in err.value.message
    # Whatever is handed to it, the resolver keeps an acceptable part and expands finitely.
    resolver = RoleResolver(roles)
    assert resolver.expand(["assume:ax", "assume:test"]) == ["assume:ax", "assume:test"]
    assert resolver.expand(["assume:*"]) == ["assume:*"]


def test_an_acyclic_but_exponential_expansion_is_cut_off() -> None:
    # Each level doubles the parameter's variants: 2**11 scopes at the bottom.
    roles = {f"r{i}:*": [f"assume:r{i + 1}:<..>a", f"assume:r{i + 1}:<..>b"] for i in range(11)}
    check_roles(sorted(roles.items()))
    assert len(RoleResolver(roles, limit=5000).expand(["assume:r0:"])) == 2**12 - 1
    with pytest.raises(ExpansionTooLarge):
        RoleResolver(roles, limit=1000).expand(["assume:r0:"])


def test_parameters_are_only_special_in_star_roles() -> None:
    check_roles([("plain", ["x<..><..>", "y*<..>"])])
    assert RoleResolver({"plain": ["x<..><..>"]}).expand(["assume:plain"]) == ["assume:plain", "x<..><..>"]


def test_scope_order_is_upstreams_scope_compare() -> None:
    assert sort_scopes(["a(", "a", "a*", "b", ""]) == ["", "a*", "a", "a(", "b"]
    # UTF-16 code units: U+1F600 is D83D DE00, before U+FFFF (code points say the opposite).
    assert sort_scopes(["\uffff", "\U0001f600"]) == ["\U0001f600", "\uffff"]
    assert normalize(["a:b", "a:*", "b", "c*", "cd", "c"]) == ["a:*", "b", "c*"]


@pytest.mark.parametrize(
    "value, text",
    [
        (1.0, "1"),
        (2.5, "2.5"),
        (-0.0, "0"),
        (1e21, "1e+21"),
        (1e-7, "1e-7"),
        (-1.5e300, "-1.5e+300"),
        (float("inf"), "Infinity"),
        (0.000001, "0.000001"),
        (7, "7"),
    ],
)
def test_numbers_render_as_javascript_prints_them(value: float, text: str) -> None:
    assert render("queue:rerun-task:<n>", {"n": value}) == f"queue:rerun-task:{text}"


def test_dotted_names_are_literal_text() -> None:
    assert render("x:<a.b>:<a>", {"a": "A", "a.b": "no"}) == "x:<a.b>:A"
    with pytest.raises(KeyError):
        render("x:<flag>", {"flag": True})


# ---------------------------------------------------------------- stored before the checks


async def test_a_stored_cycle_expands_finitely_and_can_be_fixed(tmp_path: Path) -> None:
    """A role table written before these checks (a cycle) loads; the offending role grants nothing."""
    db = Database(tmp_path / "tc.db")
    await db.open()
    try:
        await db.run(
            lambda c: c.executemany(
                "INSERT INTO roles (role_id, record) VALUES (?, ?)",
                [
                    ("a*", '{"role_id": "a*", "scopes": ["assume:a<..>b", "custom:a"]}'),
                    ("b", '{"role_id": "b", "scopes": ["custom:b"]}'),
                ],
            )
        )
        store = AuthStore(db, [])
        await store.load()
        assert store.expand(["assume:ax", "assume:b"]) == ["assume:ax", "assume:b", "custom:b"]
        with pytest.raises(APIError) as err:  # still refused when written again
            await store.put_role(Role("a*", ["assume:a<..>b"]))
        assert err.value.code == "InputError"
        await store.put_role(Role("a*", ["custom:<..>"]))
        assert store.expand(["assume:ax"]) == ["assume:ax", "custom:x"]
    finally:
        await db.close()
