"""The auth service's client endpoints, as upstream's `services/auth/src/api.js` and its database.

Scopes are stored as given; `updateClient` without `scopes` keeps them and needs only the scope
strings it adds; `static/` clientIds are reserved; `createClient` repeated within 15 minutes is
no change; `listClients` pages; errors use upstream's words. The expiry and last-use tests at the
end need tc-local's shortened timings.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import slugid
import taskcluster
import taskcluster.aio

from tclocal.testing import RunningTCLocal, running_tclocal

from .conftest import Clients, refused, wait_for
from .deployment import Deployment
from .upstream import Checked


def _body(**fields: Any) -> dict[str, Any]:
    return {"expires": taskcluster.fromNowJSON("1 day"), "description": "a contract test client", **fields}


async def _create(tc: Deployment, auth: Any, name: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    """Create `tests/<name>-<random>` (deleted when the test ends); return its id and the reply."""
    client_id = f"tests/{name}-{slugid.nice()}"
    tc.defer(lambda: tc.root_call("auth", "deleteClient", client_id))
    created: dict[str, Any] = await auth.createClient(client_id, _body(**fields))
    return client_id, created


async def test_scopes_are_stored_as_given(tc: Deployment, clients: Clients) -> None:
    auth = clients.make("auth")
    given = ["custom:z", "custom:a*", "custom:ab"]  # unsorted, and custom:ab is implied by custom:a*
    client_id, created = await _create(tc, auth, "as-given", scopes=given)
    assert created["scopes"] == given
    assert (await auth.client(client_id))["scopes"] == given
    assert "custom:ab" not in created["expandedScopes"]  # expansion is normalised
    updated = await auth.updateClient(client_id, _body(scopes=["custom:y", "custom:b"]))
    assert updated["scopes"] == ["custom:y", "custom:b"]


async def test_update_without_scopes_keeps_them(tc: Deployment, clients: Clients) -> None:
    auth = clients.make("auth")
    client_id, _ = await _create(tc, auth, "keep", scopes=["custom:b", "custom:a"], deleteOnExpiration=True)
    updated = await auth.updateClient(client_id, _body(description="second"))
    assert updated["scopes"] == ["custom:b", "custom:a"] and updated["description"] == "second"
    # deleteOnExpiration is not kept: left out, it is false again (upstream's `!!input.deleteOnExpiration`).
    assert updated["deleteOnExpiration"] is False
    assert (await auth.client(client_id))["scopes"] == ["custom:b", "custom:a"]


async def test_update_needs_every_scope_string_it_adds(tc: Deployment, clients: Clients) -> None:
    auth = clients.make("auth")
    client_id, _ = await _create(tc, auth, "target", scopes=["custom:a*"])
    editor_id = f"tests/editor-{slugid.nice()}"
    token = await tc.create_client(editor_id, [f"auth:update-client:{client_id}"])
    editor = clients.make("auth", {"clientId": editor_id, "accessToken": token})
    # custom:ab is implied by the client's custom:a*, but it is a new string: the editor needs it.
    await refused(
        editor.updateClient(client_id, _body(scopes=["custom:a*", "custom:ab"])), 403, "InsufficientScopes"
    )
    # Removing scopes, or giving the same ones in another order, adds nothing.
    await editor.updateClient(client_id, _body(scopes=[]))
    await auth.updateClient(client_id, _body(scopes=["custom:a*", "custom:b"]))
    assert (await editor.updateClient(client_id, _body(scopes=["custom:b", "custom:a*"])))["scopes"] == [
        "custom:b",
        "custom:a*",
    ]
    assert (await editor.updateClient(client_id, _body()))["scopes"] == ["custom:b", "custom:a*"]


async def test_static_client_ids_are_reserved(tc: Deployment, clients: Clients) -> None:
    auth = clients.make("auth")
    client_id = f"static/tests-{slugid.nice()}"
    reserved = f'clientId "{client_id}" starts with "static/" which is reserved'
    body = await refused(auth.createClient(client_id, _body()), 400, "InputError")
    assert body["message"].startswith(reserved)
    for call in (
        auth.updateClient(client_id, _body()),
        auth.resetAccessToken(client_id),
        auth.enableClient(client_id),
        auth.disableClient(client_id),
        auth.deleteClient(client_id),
    ):
        assert (await refused(call, 400, "InputError"))["message"].startswith(reserved)
    await refused(auth.client(client_id), 404, "ResourceNotFound")


async def test_create_again_within_15_minutes_is_no_change(tc: Deployment, clients: Clients) -> None:
    auth = clients.make("auth")
    fields = {"scopes": ["custom:b", "custom:a"], "expires": taskcluster.fromNowJSON("1 day")}
    client_id, created = await _create(tc, auth, "again", **fields)
    again = await auth.createClient(client_id, _body(**fields))
    assert again["accessToken"] == created["accessToken"] and again["created"] == created["created"]
    # Any difference (even the scopes' order) is a conflict; so is a disabled client.
    reordered = auth.createClient(client_id, _body(**{**fields, "scopes": ["custom:a", "custom:b"]}))
    conflict = await refused(reordered, 409, "RequestConflict")
    assert conflict["message"].startswith("Client already exists")
    await auth.disableClient(client_id)
    await refused(auth.createClient(client_id, _body(**fields)), 409, "RequestConflict")


async def test_errors_in_upstreams_words(tc: Deployment, clients: Clients) -> None:
    auth = clients.make("auth")
    missing = f"tests/missing-{slugid.nice()}"
    for call in (
        auth.client(missing),
        auth.updateClient(missing, _body()),
        auth.resetAccessToken(missing),
        auth.enableClient(missing),
        auth.disableClient(missing),
    ):
        assert (await refused(call, 404, "ResourceNotFound"))["message"].startswith("Client not found\n")
    await auth.deleteClient(missing)  # deleting what is not there is no error
    role = await refused(auth.role(f"tests:missing-{slugid.nice()}"), 404, "ResourceNotFound")
    assert role["message"].startswith("Role not found\n")
    role_id = f"tests:missing-{slugid.nice()}"
    update = auth.updateRole(role_id, {"description": "d", "scopes": []})
    assert (await refused(update, 404, "ResourceNotFound"))["message"].startswith(
        f"Role with roleId '{role_id}' not found\n"
    )
    bad = await refused(auth.client("a b"), 400, "InvalidRequestArguments")
    assert bad["message"].startswith(
        "Invalid URL patterns:\nURL parameter 'clientId' given as 'a b' must match regular expression: "
        "'/^[A-Za-z0-9!@/:.+|_-]+$/'"
    )
    prefix = await refused(auth.listClients(query={"prefix": "a b"}), 400, "InvalidRequestArguments")
    assert prefix["message"].startswith(
        'Query-string parameter: prefix="a b" does not match expression: /^[A-Za-z0-9!@/:.+|_-]+$/'
    )
    unknown = await refused(auth.listClients(query={"color": "red"}), 400, "InvalidRequestArguments")
    assert unknown["message"].startswith("Query-string parameter: color is not supported!\n")
    limit = await refused(auth.listClients(query={"limit": "ten"}), 400, "InvalidRequestArguments")
    assert limit["message"].startswith(
        'Query-string parameter: limit="ten" does not match expression: /^[0-9]+$/'
    )


async def test_list_clients_by_prefix_in_pages(tc: Deployment, clients: Clients) -> None:
    auth = clients.make("auth")
    prefix = f"tests/paged-{slugid.nice()}/"
    ids = [f"{prefix}{n}" for n in ("c", "a", "b")]
    for client_id in ids:
        tc.defer(functools.partial(tc.root_call, "auth", "deleteClient", client_id))
        await auth.createClient(client_id, _body())
    first = await auth.listClients(query={"prefix": prefix, "limit": 2})
    assert [c["clientId"] for c in first["clients"]] == sorted(ids)[:2]
    second = await auth.listClients(
        query={"prefix": prefix, "limit": 2, "continuationToken": first["continuationToken"]}
    )
    assert [c["clientId"] for c in second["clients"]] == sorted(ids)[2:]
    assert "continuationToken" not in second
    whole = await auth.listClients(query={"prefix": prefix})
    assert [c["clientId"] for c in whole["clients"]] == sorted(ids) and "continuationToken" not in whole


async def test_timestamps_of_a_client(tc: Deployment, clients: Clients) -> None:
    auth = clients.make("auth")
    client_id, created = await _create(tc, auth, "times")
    stamps = ("created", "lastModified", "lastDateUsed", "lastRotated")
    assert len({created[k] for k in stamps}) == 1  # one moment, as upstream's insert
    updated = await auth.updateClient(client_id, _body(description="second"))
    assert updated["lastModified"] >= created["lastModified"]
    assert [updated[k] for k in ("created", "lastRotated")] == [created["created"], created["lastRotated"]]
    reset = await auth.resetAccessToken(client_id)
    assert reset["lastRotated"] == reset["lastModified"] >= updated["lastModified"]
    assert reset["created"] == created["created"] and reset["accessToken"] != created["accessToken"]


async def test_unusable_clients_fail_authentication_in_upstreams_words(
    tc: Deployment, clients: Clients
) -> None:
    auth = clients.make("auth")
    past = taskcluster.stringDate(datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1))
    expired_id, expired = await _create(tc, auth, "expired", expires=past)
    own = clients.make("auth", {"clientId": expired_id, "accessToken": expired["accessToken"]})
    body = await refused(own.currentScopes(), 401, "AuthenticationFailed")
    assert body["message"].startswith(f"Client with clientId: '{expired_id}' has expired")
    assert (await auth.client(expired_id))["clientId"] == expired_id  # kept: deleteOnExpiration is false
    disabled_id, disabled = await _create(tc, auth, "disabled")
    await auth.disableClient(disabled_id)
    own = clients.make("auth", {"clientId": disabled_id, "accessToken": disabled["accessToken"]})
    body = await refused(own.currentScopes(), 401, "AuthenticationFailed")
    assert body["message"].startswith(f"Client with clientId '{disabled_id}' is disabled")
    unknown = f"tests/unknown-{slugid.nice()}"
    nobody = clients.make("auth", {"clientId": unknown, "accessToken": disabled["accessToken"]})
    body = await refused(nobody.currentScopes(), 401, "AuthenticationFailed")
    assert body["message"].startswith(f"Client with clientId '{unknown}' not found")


FILE_CLIENT = {"clientId": "file/ci", "accessToken": "ci-token-1234567890123", "scopes": ["custom:ci"]}


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTCLocal]:
    """A tc-local whose expiry job runs every 0.2 s and that records every use of a client.

    Its clients file declares `file/ci`, a static client whose id does not start with `static/`.
    """
    folder = tmp_path_factory.mktemp("tclocal-clients")
    clients_file = folder / "clients.json"
    clients_file.write_text(json.dumps([FILE_CLIENT]))
    with running_tclocal(
        folder / "data",
        clients_file=clients_file,
        claim_work_wait=0.5,
        reaper_interval=0.2,
        expiry_interval=0.2,
        last_used_delay=0.0,
    ) as service:
        yield service


@pytest.mark.tclocal_only("the expiry job's timing is tc-local's shortened knob (upstream: hourly)")
async def test_expired_clients_are_deleted_when_they_asked_to_be(quick: RunningTCLocal) -> None:
    async with aiohttp.ClientSession() as session:
        auth = Checked(taskcluster.aio.Auth({**quick.options(), "maxRetries": 0}, session=session))
        past = taskcluster.fromNowJSON("-1 minute")
        deleted, kept = f"tests/delete-{slugid.nice()}", f"tests/keep-{slugid.nice()}"
        await auth.createClient(deleted, _body(expires=past, deleteOnExpiration=True))
        await auth.createClient(kept, _body(expires=past))

        async def listed() -> list[str]:
            return [c["clientId"] for c in (await auth.listClients(query={"prefix": "tests/"}))["clients"]]

        remaining = await wait_for(listed, lambda ids: deleted not in ids)
        assert kept in remaining


@pytest.mark.tclocal_only("lastDateUsed is refreshed every 6 hours upstream; tc-local's knob shortens it")
async def test_last_date_used_follows_authentication(quick: RunningTCLocal) -> None:
    async with aiohttp.ClientSession() as session:
        auth = Checked(taskcluster.aio.Auth({**quick.options(), "maxRetries": 0}, session=session))
        client_id = f"tests/used-{slugid.nice()}"
        created = await auth.createClient(client_id, _body(scopes=["auth:current-scopes"]))
        own = taskcluster.aio.Auth(
            {
                **quick.options({"clientId": client_id, "accessToken": created["accessToken"]}),
                "maxRetries": 0,
            },
            session=session,
        )

        async def used() -> str:
            await own.currentScopes()
            stamp: str = (await auth.client(client_id))["lastDateUsed"]
            return stamp

        await wait_for(used, lambda stamp: stamp > created["lastDateUsed"])
        assert (await auth.client(client_id))["lastModified"] == created["lastModified"]
        # Static clients too (the root client signs every call of `auth`).
        root = await auth.client(quick.root_client_id)
        assert root["lastDateUsed"] > root["created"]


@pytest.mark.tclocal_only("clients from tc-local's --clients file")
async def test_a_static_client_is_never_created_again(quick: RunningTCLocal) -> None:
    async with aiohttp.ClientSession() as session:
        auth = Checked(taskcluster.aio.Auth({**quick.options(), "maxRetries": 0}, session=session))
        listed = await auth.client("file/ci")
        assert listed["description"].endswith("administrator who deploys this taskcluster instance.")
        same = {k: listed[k] for k in ("expires", "description", "scopes")}
        # The same content as the static client: a conflict, never its accessToken.
        await refused(auth.createClient("file/ci", same), 409, "RequestConflict")
        await refused(auth.resetAccessToken("file/ci"), 409, "RequestConflict")


async def test_role_lists_page_with_a_limit(tc: Deployment, clients: Clients) -> None:
    auth = clients.make("auth")
    prefix = f"tests:{slugid.nice()}:paged-"
    for n in range(3):
        tc.defer(functools.partial(tc.root_call, "auth", "deleteRole", f"{prefix}{n}"))
        await auth.createRole(f"{prefix}{n}", {"description": "d", "scopes": []})
    everything = (await auth.listRoleIds())["roleIds"]
    assert "continuationToken" not in (await auth.listRoleIds())
    limit = max(1, (len(everything) + 2) // 3)  # three or four pages, however many roles there are
    seen: list[str] = []
    query: dict[str, Any] = {"limit": limit}
    while True:
        page = await auth.listRoleIds(query=query)
        assert 0 < len(page["roleIds"]) <= limit
        seen += page["roleIds"]
        if "continuationToken" not in page:
            break
        query = {"limit": limit, "continuationToken": page["continuationToken"]}
    assert seen == everything and {f"{prefix}{n}" for n in range(3)} <= set(seen)
    first = await auth.listRoles2(query={"limit": 1})
    assert [r["roleId"] for r in first["roles"]] == everything[:1] and "continuationToken" in first
    await refused(auth.listRoles2(query={"limit": "x"}), 400, "InvalidRequestArguments")
