"""The auth service: clients, roles, scope expansion, and the authentication test endpoints."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tclocal.auth.store import Client, Role, new_access_token
from tclocal.context import Context
from tclocal.core.endpoints import Call, Endpoint, Reply, health_endpoints, offset_page
from tclocal.core.errors import APIError
from tclocal.core.hawk import Authenticator, ClientRecord
from tclocal.core.scopes import has_scope, satisfies, sort_scopes, unsatisfied
from tclocal.core.timestamps import now, parse_iso, to_iso
from tclocal.core.validation import DATE_TIME, SCOPE_LIST, Validator, obj

CLIENT_ID = r"^[A-Za-z0-9!@/:.+|_-]+$"
# Upstream's URL parameter patterns for this service (a mismatch is 400 InvalidRequestArguments).
PARAMS: dict[str, re.Pattern[str]] = {
    "clientId": re.compile(CLIENT_ID),
    "roleId": re.compile(r"^[\x20-\x7e]+$"),
}
CREATE_CLIENT = Validator(
    obj(
        ["expires", "description"],
        expires=DATE_TIME,
        description={"type": "string", "maxLength": 10240},
        scopes={**SCOPE_LIST, "uniqueItems": True},
        deleteOnExpiration={"type": "boolean"},
    )
)
CREATE_ROLE = Validator(
    obj(
        ["description", "scopes"],
        description={"type": "string", "maxLength": 10240},
        scopes={**SCOPE_LIST, "uniqueItems": True},
    )
)
SCOPESET = Validator(obj(["scopes"], scopes={**SCOPE_LIST, "uniqueItems": True}))
TEST_AUTHENTICATE = Validator(
    obj(["clientScopes", "requiredScopes"], clientScopes=SCOPE_LIST, requiredScopes=SCOPE_LIST)
)
TESTER_SCOPES_GET = ["test:*", "auth:create-client:test:*"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class AuthService:
    """Handlers for the auth service."""

    def __init__(self, ctx: Context, wst_secret: str) -> None:
        self.ctx = ctx
        self._wst_secret = wst_secret

    def _client_reply(self, client: Client, with_token: bool = False) -> dict[str, Any]:
        reply = client.to_api(self.ctx.auth.expand(client.scopes))
        if with_token:
            reply["accessToken"] = client.access_token
        return reply

    def _client(self, client_id: str) -> Client:
        client = self.ctx.auth.client(client_id)
        if client is None:
            raise APIError("ResourceNotFound", "Client not found")
        return client

    async def list_clients(self, call: Call) -> Reply:
        """Handle `listClients`: by prefix, in clientId order, paged as upstream's paginateResults."""
        prefix = call.query.get("prefix")
        if prefix is not None and not re.fullmatch(CLIENT_ID, prefix):
            raise APIError(
                "InvalidRequestArguments",
                f'Query-string parameter: prefix="{prefix}" does not match expression: /{CLIENT_ID}/',
            )
        offset, limit = offset_page(call)
        page = self.ctx.auth.clients(prefix or "")[offset : offset + limit + 1]
        reply: dict[str, Any] = {"clients": [self._client_reply(c) for c in page[:limit]]}
        if len(page) > limit:
            reply["continuationToken"] = str(offset + limit)
        return reply

    async def client(self, call: Call) -> Reply:
        """Handle `client`."""
        return self._client_reply(self._client(call.params["clientId"]))

    async def create_client(self, call: Call) -> Reply:
        """Handle `createClient`: returns the new accessToken (409 if the clientId exists).

        Scopes are stored as given (neither sorted nor deduplicated), as upstream does; the same
        request again within 15 minutes returns the client as it is.
        """
        client_id, body = call.params["clientId"], call.body
        scopes = body.get("scopes", [])
        _refuse_static(client_id)
        _refuse_double_star(scopes)
        call.authorize(clientId=client_id, scopes=scopes)
        t = now()
        client = Client(
            client_id,
            new_access_token(),
            scopes,
            body["description"],
            parse_iso(body["expires"]),
            t,
            t,
            t,
            delete_on_expiration=bool(body.get("deleteOnExpiration", False)),
            last_date_used=t,
        )
        return self._client_reply(await self.ctx.auth.create_client(client), with_token=True)

    async def update_client(self, call: Call) -> Reply:
        """Handle `updateClient`: needs the scopes it adds; without `scopes` they stay as they are.

        As upstream: the scopes added are those not literally in the client's scopes, and
        `deleteOnExpiration` is set from the body (false when left out), like `expires`.
        """
        client_id, body = call.params["clientId"], call.body
        scopes: list[str] | None = body.get("scopes")
        _refuse_static(client_id)
        _refuse_double_star(scopes or [])
        old = self._client(client_id)
        added = [s for s in scopes or [] if s not in old.scopes]
        call.authorize(clientId=client_id, scopesAdded=added)
        client = replace(
            old,
            scopes=old.scopes if scopes is None else scopes,
            description=body["description"],
            expires=parse_iso(body["expires"]),
            delete_on_expiration=bool(body.get("deleteOnExpiration", False)),
            last_modified=now(),
        )
        return self._client_reply(await self.ctx.auth.put_client(client))

    async def reset_access_token(self, call: Call) -> Reply:
        """Handle `resetAccessToken`."""
        _refuse_static(call.params["clientId"])
        old = self._client(call.params["clientId"])
        t = now()
        client = replace(old, access_token=new_access_token(), last_rotated=t, last_modified=t)
        return self._client_reply(await self.ctx.auth.put_client(client), with_token=True)

    async def _set_disabled(self, call: Call, disabled: bool) -> Reply:
        _refuse_static(call.params["clientId"])
        old = self._client(call.params["clientId"])
        client = replace(old, disabled=disabled, last_modified=now())
        return self._client_reply(await self.ctx.auth.put_client(client))

    async def enable_client(self, call: Call) -> Reply:
        """Handle `enableClient`."""
        return await self._set_disabled(call, False)

    async def disable_client(self, call: Call) -> Reply:
        """Handle `disableClient`."""
        return await self._set_disabled(call, True)

    async def delete_client(self, call: Call) -> Reply:
        """Handle `deleteClient` (a client that does not exist is no error, as upstream)."""
        _refuse_static(call.params["clientId"])
        await self.ctx.auth.delete_client(call.params["clientId"])
        return None

    def _role_reply(self, role: Role) -> dict[str, Any]:
        return role.to_api(self.ctx.auth.expand([f"assume:{role.role_id}"]))

    def _role(self, role_id: str) -> Role:
        role = self.ctx.auth.role(role_id)
        if role is None:
            raise APIError("ResourceNotFound", "Role not found")
        return role

    async def list_roles(self, call: Call) -> Reply:
        """Handle `listRoles`."""
        return [self._role_reply(r) for r in self.ctx.auth.roles()]

    def _role_page(self, call: Call) -> tuple[list[Role], dict[str, Any]]:
        """The roles of one page, as upstream's rolesResponseBuilder: all of them without a `limit`.

        The continuationToken is the next offset (upstream: hashid-encoded); it counts only
        with a `limit`, and a token that is not one is 400 InputError.
        """
        roles, reply = self.ctx.auth.roles(), dict[str, Any]()
        text = call.query.get("limit", "")
        if text and not re.fullmatch("[0-9]+", text):
            raise APIError(
                "InvalidRequestArguments",
                f'Query-string parameter: limit="{text}" does not match expression: /^[0-9]+$/',
            )
        token = call.query.get("continuationToken", "")
        if token and not token.isdigit():
            raise APIError("InputError", "Invalid continuationToken")
        limit = int(text or 0)  # 0 is no limit, as upstream's `parseInt(limit) || undefined`
        if not limit:
            return roles, reply
        offset = int(token or 0)
        if offset + limit < len(roles):
            reply["continuationToken"] = str(offset + limit)
        return roles[offset : offset + limit], reply

    async def list_roles2(self, call: Call) -> Reply:
        """Handle `listRoles2` (paged with `limit`)."""
        roles, reply = self._role_page(call)
        return {**reply, "roles": [self._role_reply(r) for r in roles]}

    async def list_role_ids(self, call: Call) -> Reply:
        """Handle `listRoleIds` (paged with `limit`)."""
        roles, reply = self._role_page(call)
        return {**reply, "roleIds": [r.role_id for r in roles]}

    async def role(self, call: Call) -> Reply:
        """Handle `role`."""
        return self._role_reply(self._role(call.params["roleId"]))

    async def create_role(self, call: Call) -> Reply:
        """Handle `createRole`: idempotent for identical content, 409 otherwise.

        Scopes are stored as given, only sorted (scopeCompare), as upstream does.
        """
        role_id, body = call.params["roleId"], call.body
        _refuse_double_star(body["scopes"])
        call.authorize(roleId=role_id, scopes=body["scopes"])
        t = now()
        role = Role(role_id, sort_scopes(body["scopes"]), body["description"], t, t)
        return self._role_reply(await self.ctx.auth.put_role(role, create=True))

    async def update_role(self, call: Call) -> Reply:
        """Handle `updateRole`: needs the scopes it adds (those the role's expansion lacks).

        Scopes are stored in the order given, as upstream does on update.
        """
        role_id, body = call.params["roleId"], call.body
        _refuse_double_star(body["scopes"])
        old = self.ctx.auth.role(role_id)
        if old is None:  # upstream words this one differently from `role`'s
            raise APIError("ResourceNotFound", f"Role with roleId '{role_id}' not found", roleId=role_id)
        former = self.ctx.auth.expand(old.scopes)
        added = [s for s in body["scopes"] if not has_scope(former, s)]
        call.authorize(roleId=role_id, scopesAdded=added)
        role = replace(old, scopes=body["scopes"], description=body["description"], last_modified=now())
        return self._role_reply(await self.ctx.auth.put_role(role))

    async def delete_role(self, call: Call) -> Reply:
        """Handle `deleteRole`."""
        await self.ctx.auth.delete_role(call.params["roleId"])
        return None

    async def expand_scopes(self, call: Call) -> Reply:
        """Handle `expandScopes`."""
        return {"scopes": self.ctx.auth.expand(call.body["scopes"])}

    async def current_scopes(self, call: Call) -> Reply:
        """Handle `currentScopes`: the caller's scopes, expanded."""
        return {"scopes": call.identity().scopes}

    def _tester(self, call: Call, client_scopes: list[str], required: list[str]) -> Reply:
        """Authenticate as upstream's fake `tester` client (accessToken `no-secret`)."""
        expand = self.ctx.auth.expand

        def lookup(client_id: str) -> ClientRecord | None:
            if client_id != "tester":
                return None
            return ClientRecord("no-secret", expand(client_scopes), now() + 3600)

        call.authenticator = Authenticator(lookup, expand, self.ctx.settings.hawk_skew)
        identity = call.identity()
        if not satisfies(identity.scopes, {"AllOf": required}):
            raise APIError(
                "InsufficientScopes",
                "Client ID {{clientId}} does not have sufficient scopes: missing {{missing}}",
                clientId=identity.client_id or "(anonymous)",
                missing=unsatisfied(identity.scopes, {"AllOf": required}),
            )
        return {"clientId": identity.client_id, "scopes": identity.scopes}

    async def test_authenticate(self, call: Call) -> Reply:
        """Handle `testAuthenticate`."""
        return self._tester(call, call.body["clientScopes"], call.body["requiredScopes"])

    async def test_authenticate_get(self, call: Call) -> Reply:
        """Handle `testAuthenticateGet`."""
        return self._tester(call, TESTER_SCOPES_GET, ["test:scope"])

    async def websocktunnel_token(self, call: Call) -> Reply:
        """Handle `websocktunnelToken`: an HS256 JWT for a websocktunnel (signed with tc-local's secret)."""
        audience, client = call.params["wstAudience"], call.params["wstClient"]
        issued = int(now())
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = {"sub": client, "aud": audience, "iat": issued, "nbf": issued - 900, "exp": issued + 3600}
        payload = _b64(json.dumps(claims).encode())
        signature = hmac.new(self._wst_secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256)
        token = f"{header}.{payload}.{_b64(signature.digest())}"
        return {
            "wstAudience": audience,
            "wstClient": client,
            "token": token,
            "expires": to_iso(issued + 3600),
        }

    async def sentry_dsn(self, call: Call) -> Reply:
        """Handle `sentryDSN`: the configured DSN (secret and public forms), or 404 when none is set."""
        project = call.params["project"]
        call.authorize(project=project)
        dsn = self.ctx.settings.sentry_dsn
        if not dsn:
            raise APIError("ResourceNotFound", "Sentry credentials not found")
        parts = urlsplit(dsn)
        public_netloc = parts.netloc.split("@", 1)[-1]
        user = parts.username or ""
        public = urlunsplit(parts._replace(netloc=f"{user}@{public_netloc}" if user else public_netloc))
        return {
            "project": project,
            "dsn": {"secret": dsn, "public": public},
            "expires": to_iso(now() + 48 * 3600),
        }

    def _client_endpoints(self) -> list[Endpoint]:
        c = "/clients/<clientId>"
        return [
            Endpoint(
                "listClients",
                "GET",
                "/clients/",
                self.list_clients,
                "auth:list-clients",
                query=("prefix", "continuationToken", "limit"),
            ),
            Endpoint("client", "GET", c, self.client, "auth:get-client:<clientId>"),
            Endpoint(
                "createClient",
                "PUT",
                c,
                self.create_client,
                _granting("auth:create-client:<clientId>", "scopes"),
                CREATE_CLIENT,
            ),
            Endpoint(
                "resetAccessToken",
                "POST",
                f"{c}/reset",
                self.reset_access_token,
                "auth:reset-access-token:<clientId>",
            ),
            Endpoint(
                "updateClient",
                "POST",
                c,
                self.update_client,
                _granting("auth:update-client:<clientId>", "scopesAdded"),
                CREATE_CLIENT,
            ),
            Endpoint(
                "enableClient", "POST", f"{c}/enable", self.enable_client, "auth:enable-client:<clientId>"
            ),
            Endpoint(
                "disableClient", "POST", f"{c}/disable", self.disable_client, "auth:disable-client:<clientId>"
            ),
            Endpoint("deleteClient", "DELETE", c, self.delete_client, "auth:delete-client:<clientId>"),
        ]

    def _role_endpoints(self) -> list[Endpoint]:
        r, page = "/roles/<roleId>", ("continuationToken", "limit")
        return [
            Endpoint("listRoles", "GET", "/roles/", self.list_roles, "auth:list-roles"),
            Endpoint("listRoles2", "GET", "/roles2/", self.list_roles2, "auth:list-roles", query=page),
            Endpoint("listRoleIds", "GET", "/roleids/", self.list_role_ids, "auth:list-roles", query=page),
            Endpoint("role", "GET", r, self.role, "auth:get-role:<roleId>"),
            Endpoint(
                "createRole",
                "PUT",
                r,
                self.create_role,
                _granting("auth:create-role:<roleId>", "scopes"),
                CREATE_ROLE,
            ),
            Endpoint(
                "updateRole",
                "POST",
                r,
                self.update_role,
                _granting("auth:update-role:<roleId>", "scopesAdded"),
                CREATE_ROLE,
            ),
            Endpoint("deleteRole", "DELETE", r, self.delete_role, "auth:delete-role:<roleId>"),
        ]

    def endpoints(self) -> list[Endpoint]:
        """The endpoint table."""
        return [
            *health_endpoints(),
            *self._client_endpoints(),
            *self._role_endpoints(),
            Endpoint(
                "expandScopes", "POST", "/scopes/expand", self.expand_scopes, "auth:expand-scopes", SCOPESET
            ),
            Endpoint("currentScopes", "GET", "/scopes/current", self.current_scopes, "auth:current-scopes"),
            Endpoint("sentryDSN", "GET", "/sentry/<project>/dsn", self.sentry_dsn, "auth:sentry:<project>"),
            Endpoint(
                "websocktunnelToken",
                "GET",
                "/websocktunnel/<wstAudience>/<wstClient>",
                self.websocktunnel_token,
                "auth:websocktunnel-token:<wstAudience>/<wstClient>",
            ),
            Endpoint(
                "testAuthenticate",
                "POST",
                "/test-authenticate",
                self.test_authenticate,
                None,
                TEST_AUTHENTICATE,
            ),
            Endpoint("testAuthenticateGet", "GET", "/test-authenticate-get/", self.test_authenticate_get),
        ]


def _refuse_static(client_id: str) -> None:
    """Upstream reserves `static/` clientIds for its configured clients: none may be changed."""
    if client_id.startswith("static/"):
        raise APIError(
            "InputError",
            'clientId "{{clientId}}" starts with "static/" which is reserved for statically '
            "configured clients. Contact your administrator to change static clients.",
            clientId=client_id,
        )


def _refuse_double_star(scopes: list[str]) -> None:
    """Upstream refuses client and role scopes ending in `**` before anything else."""
    if any(s.endswith("**") for s in scopes):
        raise APIError("InputError", "scopes must not end with `**`")


def _granting(required: str, listed: str) -> dict[str, Any]:
    """`required` plus every scope in the request's `listed` parameter (callers cannot escalate)."""
    return {"AllOf": [required, {"for": "scope", "in": listed, "each": "<scope>"}]}
