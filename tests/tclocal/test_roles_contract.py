"""Roles and scopes through the auth API, answered as upstream's auth service answers.

Every role a test creates has an id under the test's own prefix and is deleted at the end.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import slugid
import taskcluster
from taskcluster.exceptions import TaskclusterAuthFailure, TaskclusterRestFailure

from .conftest import Clients
from .deployment import Deployment


@pytest.fixture
async def auth(clients: Clients) -> AsyncIterator[Any]:
    """The auth service as root; deletes the roles the test created under `auth.prefix`."""
    service = clients.make("auth")
    prefix = f"tests-{slugid.nice()}-"
    service.prefix = prefix
    yield service
    for role_id in (await service.listRoleIds())["roleIds"]:
        if role_id.startswith(prefix):
            await service.deleteRole(role_id)


async def _refused(call: Any, status: int, code: str) -> str:
    with pytest.raises(TaskclusterRestFailure) as err:
        await call
    assert err.value.status_code == status
    assert err.value.body["code"] == code
    return str(err.value.body["message"])


def _role(*scopes: str) -> dict[str, Any]:
    return {"description": "test role", "scopes": list(scopes)}


async def test_a_role_making_a_cycle_is_refused(tc: Deployment, clients: Clients, auth: Any) -> None:
    p = auth.prefix
    message = await _refused(auth.createRole(f"{p}a*", _role(f"assume:{p}a<..>b")), 400, "InputError")
    assert f"found: 'assume:{p}a*' -> 'assume:{p}a*'" in message
    await _refused(auth.role(f"{p}a*"), 404, "ResourceNotFound")
    # A client holding `assume:<p>ax` expands at once (it used to never finish).
    client_id = f"{p}holder"
    token = await tc.create_client(client_id, [f"assume:{p}ax"])
    holder = clients.make("auth", {"clientId": client_id, "accessToken": token})
    scopes = (await holder.currentScopes())["scopes"]
    assert f"assume:{p}ax" in scopes and not any(s.startswith(f"assume:{p}axb") for s in scopes)
    # Upstream's own example: two roles that assume each other through parameters.
    await auth.createRole(f"{p}test*", _role(f"assume:{p}other<..>x"))
    await _refused(auth.createRole(f"{p}other*", _role(f"assume:{p}te<..>")), 400, "InputError")


async def test_an_update_making_a_cycle_is_refused(auth: Any) -> None:
    p = auth.prefix
    await auth.createRole(f"{p}1:*", _role(f"assume:{p}2:prefix-<..>/some-suffix"))
    await auth.createRole(f"{p}2:*", _role("plain-scope"))
    update = auth.updateRole(f"{p}2:*", _role(f"assume:{p}1:prefix/<..>#some-suffix"))
    assert "dependency cycles" in await _refused(update, 400, "InputError")
    assert (await auth.role(f"{p}2:*"))["scopes"] == ["plain-scope"]


@pytest.mark.parametrize(
    "scope, says",
    [
        ("x:<..>/<..>", "contains multiple '<..>'"),
        ("x:*<..>", "ends with '*<..>' which implies an ambiguous kleene"),
    ],
)
async def test_bad_parameters_in_a_star_role_are_refused(auth: Any, scope: str, says: str) -> None:
    p = auth.prefix
    assert says in await _refused(auth.createRole(f"{p}r*", _role(scope)), 400, "InputError")
    # Without a final `*` in the roleId, `<..>` is plain text.
    assert (await auth.createRole(f"{p}plain", _role(scope)))["scopes"] == [scope]


async def test_scopes_ending_in_two_stars_are_refused(tc: Deployment, auth: Any) -> None:
    p = auth.prefix
    says = "scopes must not end with `**`"
    assert says in await _refused(auth.createRole(f"{p}r", _role("foo:***")), 400, "InputError")
    await auth.createRole(f"{p}r", _role("foo:*"))
    assert says in await _refused(auth.updateRole(f"{p}r", _role("foo:**")), 400, "InputError")
    expires = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).isoformat()
    client = {"description": "d", "expires": expires, "scopes": ["foo:**"]}
    assert says in await _refused(auth.createClient(f"{p}c", client), 400, "InputError")


async def test_a_star_star_parameter_is_not_widened(auth: Any) -> None:
    p = auth.prefix
    await auth.createRole(f"{p}repo:*", _role(f"secrets:get:{p}<..>"))
    expanded = (await auth.expandScopes({"scopes": [f"assume:{p}repo:**"]}))["scopes"]
    assert expanded == [f"assume:{p}repo:**", f"secrets:get:{p}**"]


async def test_role_scopes_are_stored_as_given(auth: Any) -> None:
    p = auth.prefix
    created = await auth.createRole(f"{p}r", _role("queue:xb", "queue:x*", "a(", "a"))
    # Only sorted (scopeCompare: a trailing `*` before the end), nothing dropped.
    assert created["scopes"] == ["a", "a(", "queue:x*", "queue:xb"]
    assert created["expandedScopes"] == ["a", "a(", f"assume:{p}r", "queue:x*"]
    again = await auth.createRole(f"{p}r", _role("queue:x*", "queue:xb", "a", "a("))
    assert again["scopes"] == created["scopes"]
    await _refused(auth.createRole(f"{p}r", _role("queue:x*")), 409, "RequestConflict")
    # updateRole keeps the order given.
    assert (await auth.updateRole(f"{p}r", _role("b", "c*", "c")))["scopes"] == ["b", "c*", "c"]


async def test_update_role_needs_only_what_the_role_did_not_grant(
    tc: Deployment, clients: Clients, auth: Any
) -> None:
    p = auth.prefix
    await auth.createRole(f"{p}inner", _role("custom:x"))
    await auth.createRole(f"{p}outer", _role(f"assume:{p}inner"))
    client_id = f"{p}editor"
    token = await tc.create_client(client_id, [f"auth:update-role:{p}outer"])
    editor = clients.make("auth", {"clientId": client_id, "accessToken": token})
    # `custom:x` is in the role's expansion already, so adding it needs no scope of the caller.
    updated = await editor.updateRole(f"{p}outer", _role(f"assume:{p}inner", "custom:x"))
    assert updated["scopes"] == [f"assume:{p}inner", "custom:x"]
    await _refused(editor.updateRole(f"{p}outer", _role("custom:y")), 403, "InsufficientScopes")


async def test_scopes_ending_in_a_newline_are_invalid_everywhere(
    tc: Deployment, clients: Clients, auth: Any
) -> None:
    p = auth.prefix
    await _refused(auth.createRole(f"{p}r", _role("abc\n")), 400, "InputValidationError")
    await _refused(auth.expandScopes({"scopes": ["abc\n"]}), 400, "InputValidationError")
    expires = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).isoformat()
    client = {"description": "d", "expires": expires, "scopes": ["abc\n"]}
    await _refused(auth.createClient(f"{p}c", client), 400, "InputValidationError")
    await _refused(auth.role(f"{p}r\n"), 400, "InvalidRequestArguments")
    narrowed = clients.make("auth", authorizedScopes=["auth:current-scopes\n"])
    with pytest.raises(TaskclusterAuthFailure):
        await narrowed.currentScopes()
    now = datetime.datetime.now(datetime.UTC)
    temporary = taskcluster.createTemporaryCredentials(
        tc.root_client_id, tc.root_access_token, now, now + datetime.timedelta(minutes=5), ["abc\n"]
    )
    assert json.loads(temporary["certificate"])["scopes"] == ["abc\n"]
    with pytest.raises(TaskclusterAuthFailure) as err:
        await clients.make("auth", temporary).currentScopes()
    assert "valid scopes" in err.value.body["message"]
