"""Authentication (Hawk, temporary credentials, authorizedScopes, bewits) and the auth service."""

from __future__ import annotations

import datetime
import functools
import json
import time
from typing import Any

import aiohttp
import mohawk
import pytest
import slugid
import taskcluster
from taskcluster.exceptions import TaskclusterAuthFailure, TaskclusterRestFailure

from tclocal.auth.store import ANONYMOUS_SCOPES
from tclocal.testing import unique_worker_type

from .conftest import Clients, refused
from .deployment import Deployment


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def temporary(
    tc: Deployment, scopes: list[str], start: float, expiry: float, name: str | None = None
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


async def test_wrong_access_token_is_401(tc: Deployment, clients: Clients) -> None:
    auth = clients.make("auth", {"clientId": tc.root_client_id, "accessToken": "wrong"})
    await refused(auth.currentScopes(), 401, "AuthenticationFailed")
    unknown = clients.make("auth", {"clientId": f"nobody-{slugid.nice()}", "accessToken": "x"})
    await refused(unknown.currentScopes(), 401, "AuthenticationFailed")


async def test_public_endpoints_ignore_credentials(tc: Deployment, clients: Clients) -> None:
    auth = clients.make("queue", {"clientId": tc.root_client_id, "accessToken": "wrong"})
    assert (await auth.ping())["alive"] is True


async def test_temporary_credentials(tc: Deployment, clients: Clients) -> None:
    unnamed = temporary(tc, ["auth:current-scopes", "custom:a"], -60, 600)
    scopes = (await clients.make("auth", unnamed).currentScopes())["scopes"]
    assert "custom:a" in scopes and "auth:create-client:*" not in scopes
    named = temporary(tc, ["custom:b"], -60, 600, name=f"tests/named-temp-{slugid.nice()}")
    assert (await clients.make("auth", named).currentScopes())["scopes"].count("custom:b") == 1


async def test_expired_temporary_credentials_are_401(tc: Deployment, clients: Clients) -> None:
    expired = temporary(tc, ["auth:current-scopes"], -1200, -600)
    body = await refused(clients.make("auth", expired).currentScopes(), 401, "AuthenticationFailed")
    assert "expiry" in body["message"]


async def test_tampered_or_overreaching_certificates_are_401(tc: Deployment, clients: Clients) -> None:
    credentials = temporary(tc, ["custom:a"], -60, 600)
    certificate = json.loads(credentials["certificate"])
    certificate["scopes"] = ["*"]
    forged = {**credentials, "certificate": json.dumps(certificate)}
    await refused(clients.make("auth", forged).currentScopes(), 401, "AuthenticationFailed")
    client_id = f"tests/limited-issuer-{slugid.nice()}"
    token = await tc.create_client(client_id, ["custom:a"])
    overreaching = taskcluster.createTemporaryCredentials(
        client_id, token, utcnow(), utcnow() + datetime.timedelta(minutes=5), ["custom:*"]
    )
    await refused(clients.make("auth", overreaching).currentScopes(), 401, "AuthenticationFailed")


async def test_authorized_scopes_narrow_the_caller(tc: Deployment, clients: Clients) -> None:
    narrowed = clients.make("queue", authorizedScopes=["queue:status:*"])
    await refused(narrowed.createTask(slugid.nice(), tc.make_task()), 403, "InsufficientScopes")
    client_id = f"tests/small-{slugid.nice()}"
    token = await tc.create_client(client_id, ["custom:a"])
    too_wide = clients.make(
        "auth", {"clientId": client_id, "accessToken": token}, authorizedScopes=["custom:*"]
    )
    await refused(too_wide.currentScopes(), 401, "AuthenticationFailed")


async def test_hawk_timestamps_and_replays_as_upstream(
    tc: Deployment, session: aiohttp.ClientSession
) -> None:
    """Upstream allows 15 minutes of clock skew and does not check nonces (no replay cache)."""
    url = f"{tc.root_url}/api/auth/v1/scopes/current"
    credentials = {"id": tc.root_client_id, "key": tc.root_access_token, "algorithm": "sha256"}

    def header(skew: int) -> dict[str, str]:
        sender = mohawk.Sender(
            credentials, url, "GET", content="", content_type="", _timestamp=int(time.time()) + skew
        )
        return {"Authorization": sender.request_header}

    replayed = header(0)
    for headers in (replayed, replayed, header(-14 * 60), header(14 * 60)):
        async with session.get(url, headers=headers) as response:
            assert response.status == 200, await response.text()
    for skew in (-16 * 60, 16 * 60):
        async with session.get(url, headers=header(skew)) as response:
            assert response.status == 401
            assert (await response.json())["code"] == "AuthenticationFailed"


async def test_bewit_signed_urls(
    tc: Deployment, queue: Any, worker_type: str, session: aiohttp.ClientSession
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
    expired = restricted.buildSignedUrl("currentScopes", expiration=-60)
    for bad in (scopes_url.replace("bewit=", "bewit=A"), expired):
        async with session.get(bad) as response:
            assert response.status == 401
            assert (await response.json())["code"] == "AuthenticationFailed"


async def test_client_lifecycle(tc: Deployment, clients: Clients) -> None:
    auth = clients.make("auth")
    client_id = f"tests/lifecycle-{slugid.nice()}"
    created = await auth.createClient(
        client_id, {"expires": taskcluster.fromNowJSON("1 day"), "description": "d", "scopes": ["custom:x"]}
    )
    tc.defer(lambda: tc.root_call("auth", "deleteClient", client_id))
    assert created["clientId"] == client_id and "custom:x" in created["expandedScopes"]
    again = auth.createClient(client_id, {"expires": taskcluster.fromNowJSON("1 day"), "description": "d"})
    await refused(again, 409, "RequestConflict")
    own = clients.make("auth", {"clientId": client_id, "accessToken": created["accessToken"]})
    assert "custom:x" in (await own.currentScopes())["scopes"]
    assert (await auth.client(client_id))["scopes"] == ["custom:x"]
    reset = await auth.resetAccessToken(client_id)
    await refused(own.currentScopes(), 401, "AuthenticationFailed")
    renewed = clients.make("auth", {"clientId": client_id, "accessToken": reset["accessToken"]})
    assert "custom:x" in (await renewed.currentScopes())["scopes"]
    await auth.disableClient(client_id)
    await refused(renewed.currentScopes(), 401, "AuthenticationFailed")
    await auth.enableClient(client_id)
    listed = await auth.listClients(query={"prefix": "tests/lifecycle-"})
    assert client_id in [c["clientId"] for c in listed["clients"]]
    await auth.deleteClient(client_id)
    await refused(auth.client(client_id), 404, "ResourceNotFound")
    await refused(renewed.currentScopes(), 401, "AuthenticationFailed")


async def test_create_client_cannot_grant_more_than_the_caller_has(tc: Deployment, clients: Clients) -> None:
    unique = slugid.nice()
    client_id = f"tests/granter-{unique}"
    token = await tc.create_client(client_id, [f"auth:create-client:tests/granted-{unique}-*", "custom:mine"])
    granter = clients.make("auth", {"clientId": client_id, "accessToken": token})
    body = {"expires": taskcluster.fromNowJSON("1 day"), "description": "d", "scopes": ["custom:mine"]}
    granted = f"tests/granted-{unique}-1"
    await granter.createClient(granted, body)
    tc.defer(lambda: tc.root_call("auth", "deleteClient", granted))
    more = granter.createClient(f"tests/granted-{unique}-2", {**body, "scopes": ["custom:other"]})
    await refused(more, 403, "InsufficientScopes")
    await refused(granter.createClient(f"tests/elsewhere-{unique}", body), 403, "InsufficientScopes")


async def test_roles_expand_through_assume(tc: Deployment, clients: Clients) -> None:
    auth = clients.make("auth")
    prefix = f"tests:{slugid.nice()}:"  # this test's own roles
    alpha, beta, repo = prefix + "alpha", prefix + "beta", prefix + "repo:*"
    for role_id in (alpha, beta, repo):
        tc.defer(functools.partial(tc.root_call, "auth", "deleteRole", role_id))
    await auth.createRole(alpha, {"description": "d", "scopes": ["custom:alpha", f"assume:{beta}"]})
    await auth.createRole(beta, {"description": "d", "scopes": ["custom:beta"]})
    await auth.createRole(repo, {"description": "d", "scopes": ["secrets:get:repo/<..>/ci"]})
    role = await auth.role(alpha)
    assert {"custom:alpha", "custom:beta"} <= set(role["expandedScopes"])
    expanded = (await auth.expandScopes({"scopes": [f"assume:{alpha}", f"assume:{prefix}repo:org/x"]}))[
        "scopes"
    ]
    assert {"custom:alpha", "custom:beta", "secrets:get:repo/org/x/ci"} <= set(expanded)
    client_id = f"tests/role-user-{slugid.nice()}"
    token = await tc.create_client(client_id, [f"assume:{alpha}"])
    user = clients.make("auth", {"clientId": client_id, "accessToken": token})
    assert "custom:beta" in (await user.currentScopes())["scopes"]
    assert alpha in (await auth.listRoleIds())["roleIds"]
    assert any(r["roleId"] == "anonymous" for r in await auth.listRoles())
    again = auth.createRole(alpha, {"description": "other", "scopes": ["custom:x"]})
    await refused(again, 409, "RequestConflict")
    await auth.updateRole(beta, {"description": "d", "scopes": ["custom:gamma"]})
    assert "custom:gamma" in (await user.currentScopes())["scopes"]
    await auth.deleteRole(beta)
    await refused(auth.role(beta), 404, "ResourceNotFound")


@pytest.mark.tclocal_only("the anonymous role is each deployment's own configuration")
async def test_anonymous_scopes(clients: Clients) -> None:
    scopes = (await clients.make("auth", None).currentScopes())["scopes"]
    assert set(ANONYMOUS_SCOPES) <= set(scopes)
    # Upstream's development configuration, e.g. the two-colon purge scope workers rely on.
    for scope in ["purge-cache:purge-requests:*", "auth:get-role:*", "worker-manager:list-workers:*"]:
        assert scope in scopes
    assert not any(s.startswith(("github:", "hooks:")) for s in scopes)


@pytest.mark.tclocal_only("the anonymous role is each deployment's own configuration")
async def test_a_client_without_purge_scopes_reads_purge_requests(tc: Deployment, clients: Clients) -> None:
    pool = f"tests/{unique_worker_type()}"
    await clients.make("purge-cache").purgeCache(pool, {"cacheName": "c1"})
    client_id = f"tests/no-purge-scopes-{unique_worker_type()}"
    token = await tc.create_client(client_id, [])
    worker = clients.make("purge-cache", {"clientId": client_id, "accessToken": token})
    assert [r["cacheName"] for r in (await worker.purgeRequests(pool))["requests"]] == ["c1"]


async def test_test_authenticate(clients: Clients) -> None:
    tester = clients.make("auth", {"clientId": "tester", "accessToken": "no-secret"})
    reply = await tester.testAuthenticate({"clientScopes": ["test:a*"], "requiredScopes": ["test:ab"]})
    assert reply["clientId"] == "tester" and "test:a*" in reply["scopes"]
    insufficient = tester.testAuthenticate({"clientScopes": ["test:a"], "requiredScopes": ["test:b"]})
    await refused(insufficient, 403, "InsufficientScopes")
    assert (await tester.testAuthenticateGet())["clientId"] == "tester"
    wrong = clients.make("auth", {"clientId": "tester", "accessToken": "secret"})
    await refused(wrong.testAuthenticateGet(), 401, "AuthenticationFailed")


async def test_websocktunnel_token(clients: Clients) -> None:
    token = await clients.make("auth").websocktunnelToken("audience", "client-1")
    assert token["wstClient"] == "client-1" and token["token"].count(".") == 2


def test_sync_client_end_to_end(tc: Deployment) -> None:
    """The synchronous client (requests) against the same service."""
    queue = taskcluster.Queue(tc.options())
    task_id = slugid.nice()
    status = queue.createTask(task_id, tc.make_task(workerType=unique_worker_type()))["status"]
    assert queue.status(task_id)["status"]["taskId"] == status["taskId"]
    with pytest.raises(TaskclusterRestFailure) as err:
        queue.status(slugid.nice())
    assert err.value.status_code == 404 and err.value.body["code"] == "ResourceNotFound"
    bad = taskcluster.Auth(
        {**tc.options({"clientId": tc.root_client_id, "accessToken": "bad"}), "maxRetries": 0}
    )
    with pytest.raises(TaskclusterAuthFailure) as failed:
        bad.currentScopes()
    assert failed.value.status_code == 401 and failed.value.body["code"] == "AuthenticationFailed"
    secrets = taskcluster.Secrets(tc.options())
    name = f"tests/sync-{slugid.nice()}"
    tc.defer(lambda: tc.root_call("secrets", "remove", name))
    secrets.set(name, {"secret": {"a": 1}, "expires": taskcluster.fromNowJSON("1 hour")})
    assert secrets.get(name)["secret"] == {"a": 1}


async def test_update_client_needs_the_scopes_it_adds(tc: Deployment, clients: Clients) -> None:
    auth = clients.make("auth")
    client_id = f"tests/update-{slugid.nice()}"
    body = {"expires": taskcluster.fromNowJSON("1 day"), "description": "first", "scopes": ["custom:a"]}
    await auth.createClient(client_id, body)
    tc.defer(lambda: tc.root_call("auth", "deleteClient", client_id))
    updated = await auth.updateClient(client_id, {**body, "description": "second", "scopes": ["custom:b"]})
    assert updated["description"] == "second" and updated["scopes"] == ["custom:b"]
    editor_id = f"tests/editor-{slugid.nice()}"
    token = await tc.create_client(editor_id, [f"auth:update-client:{client_id}", "custom:b"])
    editor = clients.make("auth", {"clientId": editor_id, "accessToken": token})
    await editor.updateClient(client_id, {**body, "scopes": ["custom:b"]})  # adds nothing new
    await refused(
        editor.updateClient(client_id, {**body, "scopes": ["custom:b", "custom:c"]}),
        403,
        "InsufficientScopes",
    )
    roles = (await auth.listRoles2())["roles"]
    assert any(r["roleId"] == "anonymous" for r in roles)


@pytest.mark.tclocal_only("whether a deployment has Sentry configured is its own choice")
async def test_sentry_dsn_is_404_without_a_sentry_configuration(clients: Clients) -> None:
    with pytest.raises(TaskclusterRestFailure) as err:
        await clients.make("auth").sentryDSN("my-project")
    assert err.value.status_code == 404  # upstream's auth without SENTRY_* settings


@pytest.mark.tclocal_only("starts a tc-local of its own with --sentry-dsn")
async def test_sentry_dsn_hands_out_the_configured_dsn(tmp_path, session: aiohttp.ClientSession) -> None:
    from tclocal.testing import running_tclocal

    with running_tclocal(tmp_path, sentry_dsn="http://pub:s3cret@127.0.0.1:9/42") as tc:
        deployment = Deployment(tc.root_url, tc.root_client_id, tc.root_access_token, local=tc)
        clients = Clients(deployment, session)
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
