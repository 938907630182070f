"""Clients and roles: held in memory for authentication, persisted in SQLite.

Static clients (root, tc-local's own service clients, and any from a clients file) live only in
memory and cannot be changed through the API, like upstream's `static/` clients. Clients and
roles created through the API are written to SQLite first, then to memory, so a restart keeps
them. Authentication never touches the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sqlite3
from dataclasses import asdict, dataclass, replace
from typing import Any

import slugid

from tclocal.core.db import Database
from tclocal.core.errors import APIError
from tclocal.core.hawk import ClientRecord
from tclocal.core.roles import RoleError, RoleResolver, check_roles
from tclocal.core.timestamps import now, to_iso

# What callers without credentials may do (and, as upstream, every authenticated caller too).
# The `anonymous` role of upstream's development configuration (docker/tc-admin/tc-admin.py),
# restricted to the services tc-local has (its github and hooks scopes are left out).
ANONYMOUS_SCOPES = [
    "auth:current-scopes",
    "auth:expand-scopes",
    "auth:get-client:*",
    "auth:get-role:*",
    "auth:list-clients",
    "auth:list-roles",
    "index:find-task:*",
    "index:list-namespaces:*",
    "index:list-tasks:*",
    "purge-cache:all-purge-requests",
    "purge-cache:purge-requests:*",
    "queue:get-artifact:public/*",
    "queue:get-provisioner:*",
    "queue:get-task:*",
    "queue:get-worker-type:*",
    "queue:get-worker:*",
    "queue:list-artifacts:*",
    "queue:list-dependent-tasks:*",
    "queue:list-provisioners",
    "queue:list-task-group:*",
    "queue:list-worker-types:*",
    "queue:list-workers:*",
    "queue:pending-count:*",
    "queue:status:*",
    "secrets:list-secrets",
    "worker-manager:get-worker-pool:*",
    "worker-manager:get-worker:*",
    "worker-manager:list-providers",
    "worker-manager:list-worker-pool-errors:*",
    "worker-manager:list-worker-pools",
    "worker-manager:list-workers:*",
]
log = logging.getLogger(__name__)
FAR_FUTURE = 4102444800.0  # 2100-01-01, the expiry of static clients
LAST_USED_DELAY = 6 * 3600.0  # upstream's maxLastUsedDelay: lastDateUsed is refreshed this rarely
CREATE_AGAIN_WITHIN = 15 * 60.0  # upstream's create_client: an identical retry within this is a no-op


def new_access_token() -> str:
    """A fresh 44-character access token, as upstream's slugid.v4() + slugid.v4()."""
    return slugid.v4() + slugid.v4()  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Client:
    """A client as the auth service reports it (plus its secret)."""

    client_id: str
    access_token: str
    scopes: list[str]
    description: str = ""
    expires: float = FAR_FUTURE
    created: float = 0.0
    last_modified: float = 0.0
    last_rotated: float = 0.0
    disabled: bool = False
    delete_on_expiration: bool = False
    static: bool = False
    last_date_used: float = 0.0  # 0: never recorded (a record from before it was kept): `created`

    def to_api(self, expanded: list[str]) -> dict[str, Any]:
        """The get-client-response shape."""
        return {
            "clientId": self.client_id,
            "description": self.description,
            "expires": to_iso(self.expires),
            "created": to_iso(self.created),
            "lastModified": to_iso(self.last_modified),
            "lastDateUsed": to_iso(self.last_date_used or self.created),
            "lastRotated": to_iso(self.last_rotated),
            "deleteOnExpiration": self.delete_on_expiration,
            "scopes": list(self.scopes),
            "expandedScopes": expanded,
            "disabled": self.disabled,
        }


@dataclass(frozen=True)
class Role:
    """A role: `assume:<roleId>` grants its scopes."""

    role_id: str
    scopes: list[str]
    description: str = ""
    created: float = 0.0
    last_modified: float = 0.0

    def to_api(self, expanded: list[str]) -> dict[str, Any]:
        """The get-role-response shape."""
        return {
            "roleId": self.role_id,
            "scopes": list(self.scopes),
            "description": self.description,
            "created": to_iso(self.created),
            "lastModified": to_iso(self.last_modified),
            "expandedScopes": expanded,
        }


# What upstream appends to every static client's description (static-clients.js).
STATIC_DESCRIPTION_SUFFIX = (
    "\n---\n\nThis is a **static client** inserted into this taskcluster deployment\n"
    "through static configuration. To modify this client you must contact the\n"
    "administrator who deploys this taskcluster instance."
)


def static_client(client_id: str, access_token: str, scopes: list[str], description: str) -> Client:
    """Build an in-memory-only client (its description marked static, as upstream's)."""
    t = now()
    text = description + STATIC_DESCRIPTION_SUFFIX
    return Client(client_id, access_token, scopes, text, FAR_FUTURE, t, t, t, static=True)


class AuthStore:
    """All clients and roles; answers lookups for the authenticator from memory."""

    def __init__(
        self, db: Database, static_clients: list[Client], last_used_delay: float = LAST_USED_DELAY
    ) -> None:
        self._db = db
        self._last_used_delay = last_used_delay
        self._recording: set[asyncio.Task[Any]] = set()
        self._static = {c.client_id: c for c in static_clients}
        self._clients: dict[str, Client] = {}
        self._roles: dict[str, Role] = {}
        self.resolver = RoleResolver()
        # Check-then-write of a role must not interleave with another (a cycle could slip in).
        self._role_lock = asyncio.Lock()
        self._client_lock = asyncio.Lock()
        self._refused_roles: set[str] = set()

    async def load(self) -> None:
        """Read clients and roles from SQLite; create the `anonymous` role on first start."""

        def read(conn: sqlite3.Connection) -> tuple[list[Client], list[Role]]:
            clients = [Client(**json.loads(r[0])) for r in conn.execute("SELECT record FROM clients")]
            roles = [Role(**json.loads(r[0])) for r in conn.execute("SELECT record FROM roles")]
            return clients, roles

        clients, roles = await self._db.run(read)
        self._clients = {c.client_id: c for c in clients}
        self._roles = {r.role_id: r for r in roles}
        self._refresh_roles()
        if "anonymous" not in self._roles:
            t = now()
            await self.put_role(
                Role("anonymous", ANONYMOUS_SCOPES, "What callers without credentials may do", t, t)
            )
        self._refresh_roles()

    def _refresh_roles(self) -> None:
        refused = self.resolver.set_roles({r.role_id: r.scopes for r in self._roles.values()})
        self._refused_roles = set(refused)
        for role_id, err in sorted(refused.items()):
            log.warning("role %s grants nothing until it is fixed: %s", role_id, err.message)

    def expand(self, scopes: list[str]) -> list[str]:
        """Expand scopes through the roles."""
        return self.resolver.expand(scopes)

    def client(self, client_id: str) -> Client | None:
        """A client by id (static ones first)."""
        return self._static.get(client_id) or self._clients.get(client_id)

    def lookup(self, client_id: str) -> ClientRecord | None:
        """The authenticator's view of a client."""
        client = self.client(client_id)
        if client is None:
            return None
        if not client.disabled and client.expires >= now():
            self._note_use(client)
        return ClientRecord(client.access_token, self.expand(client.scopes), client.expires, client.disabled)

    def _note_use(self, client: Client) -> None:
        """Record that `client` authenticates, when its `lastDateUsed` is older than the delay.

        As upstream's resolver, the write happens at most once per delay (it is a hint of use,
        not a log); it goes to the database in the background, never delaying the request.
        """
        current = now()
        if (client.last_date_used or client.created) >= current - self._last_used_delay:
            return
        if client.static:  # kept in memory only, like the client itself
            self._static[client.client_id] = replace(client, last_date_used=current)
            return
        self._clients[client.client_id] = replace(client, last_date_used=current)
        # Only this field is written, and only if the row still exists: a write of the whole
        # record could undo an update or a delete that reaches the database first.
        sql = "UPDATE clients SET record = json_set(record, '$.last_date_used', ?) WHERE client_id = ?"
        try:
            task = asyncio.get_running_loop().create_task(
                self._db.run(lambda c: c.execute(sql, (current, client.client_id)))
            )
        except RuntimeError:  # no loop (a lookup outside a request): memory only
            return
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)

    def clients(self, prefix: str = "") -> list[Client]:
        """Every client whose id starts with `prefix`, sorted by id."""
        merged = {**self._clients, **self._static}
        return [merged[k] for k in sorted(merged) if k.startswith(prefix)]

    def role(self, role_id: str) -> Role | None:
        """A role by id."""
        return self._roles.get(role_id)

    def roles(self) -> list[Role]:
        """Every role, sorted by id."""
        return [self._roles[k] for k in sorted(self._roles)]

    def _check_mutable(self, client_id: str) -> None:
        if client_id in self._static:
            raise APIError("RequestConflict", f"Client {client_id} is static and cannot change")

    async def create_client(self, client: Client) -> Client:
        """Store a new client, as upstream's `create_client`: the same request again is no change.

        A client that exists answers 409, unless it has the same scopes (in the same order),
        expiry and description, is enabled and was created in the last 15 minutes: then it is
        returned unchanged (with its accessToken), as upstream does.
        """
        async with self._client_lock:
            existing = self.client(client.client_id)
            if existing is None:
                return await self.put_client(client)
            if (
                not existing.static  # never hand out a static client's accessToken
                and existing.scopes == client.scopes
                and existing.expires == client.expires
                and existing.description == client.description
                and not existing.disabled
                and existing.created > now() - CREATE_AGAIN_WITHIN
            ):
                return existing
            raise APIError("RequestConflict", "Client already exists")

    async def put_client(self, client: Client) -> Client:
        """Store a (new or changed) client, its scopes as given (upstream neither sorts nor dedupes)."""
        self._check_mutable(client.client_id)
        record = json.dumps(asdict(client))
        await self._db.run(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO clients (client_id, record) VALUES (?, ?)",
                (client.client_id, record),
            )
        )
        self._clients[client.client_id] = client
        return client

    async def delete_client(self, client_id: str) -> None:
        """Remove a client (no error when it does not exist, as upstream)."""
        self._check_mutable(client_id)
        await self._db.run(lambda c: c.execute("DELETE FROM clients WHERE client_id = ?", (client_id,)))
        self._clients.pop(client_id, None)

    async def expire_clients(self, current: float) -> list[str]:
        """Delete the clients that expired before `current` and asked for it (`deleteOnExpiration`).

        As upstream's `purge-expired-clients` job; other expired clients stay (they cannot
        authenticate). Returns the deleted clientIds.
        """
        expired = [
            c.client_id for c in self._clients.values() if c.delete_on_expiration and c.expires < current
        ]
        for client_id in expired:
            await self.delete_client(client_id)
        return expired

    async def put_role(self, role: Role, *, create: bool = False) -> Role:
        """Store a (new or changed) role, with its scopes as given, and refresh the expansion.

        Refuses (400 InputError, upstream's messages) a role set upstream would refuse. With
        `create`, an existing role is returned when identical and a conflict otherwise.
        """
        async with self._role_lock:
            existing = self._roles.get(role.role_id)
            if create and existing is not None:
                if existing.scopes == role.scopes and existing.description == role.description:
                    return existing
                raise APIError(
                    "RequestConflict",
                    f"Role with roleId '{role.role_id}' already exists",
                    roleId=role.role_id,
                )
            # Roles refused at load (stored before these checks) grant nothing and are not held
            # against a write; the role written is checked last, as upstream does.
            others = [
                (r.role_id, r.scopes)
                for r in self.roles()
                if r.role_id != role.role_id and r.role_id not in self._refused_roles
            ]
            try:
                check_roles([*others, (role.role_id, role.scopes)])
            except RoleError as err:
                raise APIError("InputError", err.message, **err.details) from err
            record = json.dumps(asdict(role))
            await self._db.run(
                lambda c: c.execute(
                    "INSERT OR REPLACE INTO roles (role_id, record) VALUES (?, ?)", (role.role_id, record)
                )
            )
            self._roles[role.role_id] = role
            self._refresh_roles()
            return role

    async def delete_role(self, role_id: str) -> None:
        """Remove a role (no error when it does not exist)."""
        await self._db.run(lambda c: c.execute("DELETE FROM roles WHERE role_id = ?", (role_id,)))
        self._roles.pop(role_id, None)
        self._refresh_roles()


def generate_secret() -> str:
    """A random secret for signing blob URLs and issuing service credentials."""
    return secrets.token_urlsafe(32)
