"""The secrets service: named JSON secrets with an expiry (set, get, remove, list)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from tclocal.context import Context
from tclocal.core.endpoints import Call, Endpoint, Reply, health_endpoints, page_args
from tclocal.core.errors import OMITTED, APIError
from tclocal.core.timestamps import now, parse_iso, to_iso
from tclocal.core.validation import DATE_TIME, Validator, obj

SECRET = Validator(obj(["secret", "expires"], secret={"type": "object"}, expires=DATE_TIME))


class SecretsService:
    """Handlers for the secrets service."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def set_secret(self, call: Call) -> Reply:
        """Handle `set`: create or replace a secret."""
        name, body = call.params["name"], call.body
        value, expires = json.dumps(body["secret"]), parse_iso(body["expires"])
        await self.ctx.db.run(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO secrets (name, secret, expires) VALUES (?, ?, ?)",
                (name, value, expires),
            )
        )
        return {}

    async def remove_secret(self, call: Call) -> Reply:
        """Handle `remove`: delete a secret (no error if it does not exist, as upstream)."""
        name = call.params["name"]
        await self.ctx.db.run(lambda c: c.execute("DELETE FROM secrets WHERE name = ?", (name,)))
        return {}

    async def get_secret(self, call: Call) -> Reply:
        """Handle `get`: the secret and its expiry (404 when missing or expired)."""
        name = call.params["name"]
        row = await self.ctx.db.run(
            lambda c: c.execute(
                "SELECT secret, expires FROM secrets WHERE name = ? AND expires > ?", (name, now())
            ).fetchone()
        )
        if row is None:
            raise APIError("ResourceNotFound", "Secret not found")
        return {"secret": json.loads(row["secret"]), "expires": to_iso(row["expires"])}

    async def list_secrets(self, call: Call) -> Reply:
        """Handle `list`: secret names, in order."""
        after, limit = page_args(call)

        def read(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT name FROM secrets WHERE name > ? AND expires > ? ORDER BY name LIMIT ?",
                (after, now(), limit + 1),
            ).fetchall()
            return [r[0] for r in rows]

        names = await self.ctx.db.run(read)
        result: dict[str, Any] = {"secrets": names[:limit]}
        if len(names) > limit:
            result["continuationToken"] = names[limit - 1]
        return result

    def endpoints(self) -> list[Endpoint]:
        """The endpoint table."""
        return [
            *health_endpoints(),
            Endpoint(
                "set",
                "PUT",
                "/secret/<*name>",
                self.set_secret,
                "secrets:set:<name>",
                SECRET,
                clean_payload=_clean_secret,
            ),
            Endpoint("remove", "DELETE", "/secret/<*name>", self.remove_secret, "secrets:set:<name>"),
            Endpoint("get", "GET", "/secret/<*name>", self.get_secret, "secrets:get:<name>"),
            Endpoint(
                "list",
                "GET",
                "/secrets",
                self.list_secrets,
                "secrets:list-secrets",
                query=("continuationToken", "limit"),
            ),
        ]


def _clean_secret(payload: Any) -> Any:
    """What an error shows of a `set` body: the secret omitted, as upstream's cleanPayload."""
    if isinstance(payload, dict):
        payload["secret"] = OMITTED
    return payload
