"""Authentication (Hawk, temporary credentials, authorizedScopes, bewits) and the auth service."""

from __future__ import annotations

import datetime
import json
from typing import Any

import aiohttp
import mohawk
import pytest
import slugid
import taskcluster
from taskcluster.exceptions import TaskclusterAuthFailure, TaskclusterRestFailure

from tclocal.auth_store import ANONYMOUS_SCOPES
from tclocal.testing import RunningTCLocal

from .conftest import Clients


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def temporary(
    tc: RunningTCLocal, scopes: list[str], start: float, expiry: float, name: str | None = None
) -> dict[str, Any]:
    credentials: dict[str, Any] = taskcluster.createTemporaryCredentials(
        tc.root_client_id,
        tc.root_access_token,
        utcnow() + datetime.timedelta(seconds=start),
        utcnow() + datetime.timedelta(seconds=expiry),
        scopes,
        name=name,
    )
    if isinstance(credentials["accessToken"], bytes):
        credentials["accessToken"] = credentials["accessToken"].decode()
    return credentials


async def test_wrong_access_token_is_401(tc: RunningTCLocal, clients: Clients) -> None:
    auth = clients.make("auth", {"clientId": tc.root_client_id, "accessToken": "wrong"})
    with pytest.raises(TaskclusterAuthFailure) as err:
        await auth.currentScopes()
    assert err.value.status_code == 401
    assert err.value.body["code"] == "AuthenticationFailed"
    unknown = clients.make("auth", {"clientId": "nobody", "accessToken": "x"})
    with pytest.raises(TaskclusterAuthFailure):
        await unknown.currentScopes()


async def test_public_endpoints_ignore_credentials(tc: RunningTCLocal, clients: Clients) -> None:
    auth = clients.make("queue", {"clientId": tc.root_client_id, "accessToken": "wrong"})
    assert (await auth.ping())["alive"] is True


async def test_temporary_credentials(tc: RunningTCLocal, clients: Clients) -> None:
    unnamed = temporary(tc, ["auth:current-scopes", "custom:a"], -60, 600)
    scopes = (await clients.make("auth", unnamed).currentScopes())["scopes"]
    assert "custom:a" in scopes and "auth:create-client:*" not in scopes
    named = temporary(tc, ["custom:b"], -60, 600, name="tests/named-temp")
    assert (await clients.make("auth", named).currentScopes())["scopes"].count("custom:b") == 1


async def test_expired_temporary_credentials_are_401(tc: RunningTCLocal, clients: Clients) -> None:
    expired = temporary(tc, ["auth:current-scopes"], -1200, -600)
    with pytest.raises(TaskclusterAuthFailure) as err:
        await clients.make("auth", expired).currentScopes()
    assert "expiry" in err.value.body["message"]


async def test_tampered_or_overreaching_certificates_are_401(tc: RunningTCLocal, clients: Clients) -> None:
    credentials = temporary(tc, ["custom:a"], -60, 600)
    certificate = json.loads(credentials["certificate"])
    certificate["scopes"] = ["*"]
    forged = {**credentials, "certificate": json.dumps(certificate)}
    with pytest.raises(TaskclusterAuthFailure):
        await clients.make("auth", forged).currentScopes()
    client_id = "tests/limited-issuer"
    token = tc.create_client(client_id, ["custom:a"])
    overreaching = taskcluster.createTemporaryCredentials(
        client_id, token, utcnow(), utcnow() + datetime.timedelta(minutes=5), ["custom:*"]
    )
    with pytest.raises(TaskclusterAuthFailure):
        await clients.make("auth", overreaching).currentScopes()


async def test_authorized_scopes_narrow_the_caller(tc: RunningTCLocal, clients: Clients) -> None:
    narrowed = clients.make("queue", authorizedScopes=["queue:status:*"])
    with pytest.raises(TaskclusterRestFailure) as err:
        await narrowed.createTask(slugid.nice(), tc.make_task())
    assert err.value.status_code == 403
    client_id = "tests/small"
    token = tc.create_client(client_id, ["custom:a"])
    too_wide = clients.make(
        "auth", {"clientId": client_id, "accessToken": token}, authorizedScopes=["custom:*"]
    )
    with pytest.raises(TaskclusterAuthFailure):
        await too_wide.currentScopes()


async def test_replayed_request_is_401(tc: RunningTCLocal, session: aiohttp.ClientSession) -> None:
    url = f"{tc.root_url}/api/auth/v1/scopes/current"
    sender = mohawk.Sender(
        {"id": tc.root_client_id, "key": tc.root_access_token, "algorithm": "sha256"},
        url,
        "GET",
        content="",
        content_type="",
    )
    headers = {"Authorization": sender.request_header}
    async with session.get(url, headers=headers) as first:
        assert first.status == 200
    async with session.get(url, headers=headers) as second:
        assert second.status == 401
        assert (await second.json())["code"] == "AuthenticationFailed"


async def test_bewit_signed_urls(
    tc: RunningTCLocal, queue: Any, worker_type: str, session: aiohttp.ClientSession
) -> None:
    task_id = slugid.nice()
    await queue.createTask(task_id, tc.make_task(workerType=worker_type))
    sync_queue = taskcluster.Queue(tc.options())
    url = sync_queue.buildSignedUrl("status", task_id)
    async with session.get(url) as response:
        assert response.status == 200
        assert (await response.json())["status"]["taskId"] == task_id
    restricted = taskcluster.Auth(tc.options())
    scopes_url = restricted.buildSignedUrl("currentScopes")
    async with session.get(scopes_url) as response:
        assert "*" in (await response.json())["scopes"]
    async with session.get(scopes_url.replace("bewit=", "bewit=A")) as response:
        assert response.status == 401
    expired = restricted.buildSignedUrl("currentScopes", expiration=-60)
    async with session.get(expired) as response:
        assert response.status == 401


async def test_client_lifecycle(tc: RunningTCLocal, clients: Clients) -> None:
    auth = clients.make("auth")
    client_id = f"tests/lifecycle-{slugid.nice()}"
    created = await auth.createClient(
        client_id, {"expires": taskcluster.fromNowJSON("1 day"), "description": "d", "scopes": ["custom:x"]}
    )
    assert created["clientId"] == client_id and "custom:x" in created["expandedScopes"]
    with pytest.raises(TaskclusterRestFailure) as err:
        await auth.createClient(client_id, {"expires": taskcluster.fromNowJSON("1 day"), "description": "d"})
    assert err.value.status_code == 409
    own = clients.make("auth", {"clientId": client_id, "accessToken": created["accessToken"]})
    assert "custom:x" in (await own.currentScopes())["scopes"]
    assert (await auth.client(client_id))["scopes"] == ["custom:x"]
    reset = await auth.resetAccessToken(client_id)
    with pytest.raises(TaskclusterAuthFailure):
        await own.currentScopes()
    renewed = clients.make("auth", {"clientId": client_id, "accessToken": reset["accessToken"]})
    assert "custom:x" in (await renewed.currentScopes())["scopes"]
    await auth.disableClient(client_id)
    with pytest.raises(TaskclusterAuthFailure):
        await renewed.currentScopes()
    await auth.enableClient(client_id)
    listed = await auth.listClients(query={"prefix": "tests/lifecycle-"})
    assert client_id in [c["clientId"] for c in listed["clients"]]
    await auth.deleteClient(client_id)
    with pytest.raises(TaskclusterRestFailure) as err:
        await auth.client(client_id)
    assert err.value.status_code == 404
    with pytest.raises(TaskclusterAuthFailure):
        await renewed.currentScopes()


async def test_create_client_cannot_grant_more_than_the_caller_has(
    tc: RunningTCLocal, clients: Clients
) -> None:
    client_id = "tests/granter"
    token = tc.create_client(client_id, ["auth:create-client:tests/granted-*", "custom:mine"])
    granter = clients.make("auth", {"clientId": client_id, "accessToken": token})
    body = {"expires": taskcluster.fromNowJSON("1 day"), "description": "d", "scopes": ["custom:mine"]}
    await granter.createClient("tests/granted-1", body)
    with pytest.raises(TaskclusterRestFailure) as err:
        await granter.createClient("tests/granted-2", {**body, "scopes": ["custom:other"]})
    assert err.value.status_code == 403
    with pytest.raises(TaskclusterRestFailure) as err:
        await granter.createClient("tests/elsewhere", body)
    assert err.value.status_code == 403


async def test_roles_expand_through_assume(tc: RunningTCLocal, clients: Clients) -> None:
    auth = clients.make("auth")
    await auth.createRole(
        "project:alpha", {"description": "d", "scopes": ["custom:alpha", "assume:project:beta"]}
    )
    await auth.createRole("project:beta", {"description": "d", "scopes": ["custom:beta"]})
    await auth.createRole("repo:github.com/*", {"description": "d", "scopes": ["secrets:get:repo/<..>/ci"]})
    role = await auth.role("project:alpha")
    assert {"custom:alpha", "custom:beta"} <= set(role["expandedScopes"])
    expanded = (
        await auth.expandScopes({"scopes": ["assume:project:alpha", "assume:repo:github.com/org/x"]})
    )["scopes"]
    assert {"custom:alpha", "custom:beta", "secrets:get:repo/org/x/ci"} <= set(expanded)
    client_id = "tests/role-user"
    token = tc.create_client(client_id, ["assume:project:alpha"])
    user = clients.make("auth", {"clientId": client_id, "accessToken": token})
    assert "custom:beta" in (await user.currentScopes())["scopes"]
    assert "project:alpha" in (await auth.listRoleIds())["roleIds"]
    assert any(r["roleId"] == "anonymous" for r in await auth.listRoles())
    await auth.updateRole("project:beta", {"description": "d", "scopes": ["custom:gamma"]})
    assert "custom:gamma" in (await user.currentScopes())["scopes"]
    await auth.deleteRole("project:beta")
    with pytest.raises(TaskclusterRestFailure) as err:
        await auth.role("project:beta")
    assert err.value.status_code == 404


async def test_anonymous_scopes(clients: Clients) -> None:
    scopes = (await clients.make("auth", None).currentScopes())["scopes"]
    assert set(ANONYMOUS_SCOPES) <= set(scopes)
    assert "queue:get-artifact:public/*" in scopes


async def test_test_authenticate(clients: Clients) -> None:
    tester = clients.make("auth", {"clientId": "tester", "accessToken": "no-secret"})
    reply = await tester.testAuthenticate({"clientScopes": ["test:a*"], "requiredScopes": ["test:ab"]})
    assert reply["clientId"] == "tester" and "test:a*" in reply["scopes"]
    with pytest.raises(TaskclusterRestFailure) as err:
        await tester.testAuthenticate({"clientScopes": ["test:a"], "requiredScopes": ["test:b"]})
    assert err.value.status_code == 403
    assert (await tester.testAuthenticateGet())["clientId"] == "tester"
    wrong = clients.make("auth", {"clientId": "tester", "accessToken": "secret"})
    with pytest.raises(TaskclusterAuthFailure):
        await wrong.testAuthenticateGet()


async def test_websocktunnel_token(clients: Clients) -> None:
    token = await clients.make("auth").websocktunnelToken("audience", "client-1")
    assert token["wstClient"] == "client-1" and token["token"].count(".") == 2


def test_sync_client_end_to_end(tc: RunningTCLocal) -> None:
    """The synchronous client (requests) against the same service."""
    queue = taskcluster.Queue(tc.options())
    task_id = slugid.nice()
    status = queue.createTask(task_id, tc.make_task(workerType="sync-client"))["status"]
    assert queue.status(task_id)["status"]["taskId"] == status["taskId"]
    with pytest.raises(TaskclusterRestFailure) as err:
        queue.status(slugid.nice())
    assert err.value.status_code == 404
    bad = taskcluster.Auth(
        {**tc.options({"clientId": tc.root_client_id, "accessToken": "bad"}), "maxRetries": 0}
    )
    with pytest.raises(TaskclusterAuthFailure):
        bad.currentScopes()
    secrets = taskcluster.Secrets(tc.options())
    secrets.set("sync/secret", {"secret": {"a": 1}, "expires": taskcluster.fromNowJSON("1 hour")})
    assert secrets.get("sync/secret")["secret"] == {"a": 1}


async def test_update_client_needs_the_scopes_it_adds(tc: RunningTCLocal, clients: Clients) -> None:
    auth = clients.make("auth")
    client_id = f"tests/update-{slugid.nice()}"
    body = {"expires": taskcluster.fromNowJSON("1 day"), "description": "first", "scopes": ["custom:a"]}
    await auth.createClient(client_id, body)
    updated = await auth.updateClient(client_id, {**body, "description": "second", "scopes": ["custom:b"]})
    assert updated["description"] == "second" and updated["scopes"] == ["custom:b"]
    editor_id = f"tests/editor-{slugid.nice()}"
    token = tc.create_client(editor_id, [f"auth:update-client:{client_id}", "custom:b"])
    editor = clients.make("auth", {"clientId": editor_id, "accessToken": token})
    await editor.updateClient(client_id, {**body, "scopes": ["custom:b"]})  # adds nothing new
    with pytest.raises(TaskclusterRestFailure) as err:
        await editor.updateClient(client_id, {**body, "scopes": ["custom:b", "custom:c"]})
    assert err.value.status_code == 403
    roles = (await auth.listRoles2())["roles"]
    assert any(r["roleId"] == "anonymous" for r in roles)


async def test_sentry_dsn_is_404_without_a_sentry_configuration(clients: Clients) -> None:
    with pytest.raises(TaskclusterRestFailure) as err:
        await clients.make("auth").sentryDSN("my-project")
    assert err.value.status_code == 404  # upstream's auth without SENTRY_* settings


async def test_sentry_dsn_hands_out_the_configured_dsn(tmp_path, session: aiohttp.ClientSession) -> None:
    from tclocal.testing import running_tclocal

    with running_tclocal(tmp_path, sentry_dsn="http://pub:s3cret@127.0.0.1:9/42") as tc:
        clients = Clients(tc, session)
        reply = await clients.make("auth").sentryDSN("my-project")
        # upstream's sentry-dsn-response.json (not among the shared schemas): exactly these keys
        assert set(reply) == {"project", "dsn", "expires"} and reply["project"] == "my-project"
        assert datetime.datetime.fromisoformat(reply["expires"].replace("Z", "+00:00")) > utcnow()
        assert reply["dsn"] == {
            "secret": "http://pub:s3cret@127.0.0.1:9/42",
            "public": "http://pub@127.0.0.1:9/42",
        }
        token = tc.create_client("sentry-other", ["auth:sentry:other"])
        with pytest.raises(TaskclusterRestFailure) as err:
            await clients.make("auth", {"clientId": "sentry-other", "accessToken": token}).sentryDSN(
                "my-project"
            )
        assert err.value.status_code == 403
