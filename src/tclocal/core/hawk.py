"""Hawk authentication (header and bewit) for permanent and temporary credentials.

Follows upstream's signature validator: the `ext` attribute is read *before* the credentials
lookup because a certificate in it changes both the key (temporary access token) and the
scopes; `authorizedScopes` in `ext` narrows the scopes further; every caller, authenticated or
not, also holds `assume:anonymous`. As upstream (which gives Hawk no nonce function), a
request's timestamp may be off by the accepted skew (15 minutes upstream) and a replayed
(id, nonce, ts) triple is accepted: Taskcluster relies on TLS, not on nonces, against replays.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tclocal.core import certificates
from tclocal.core.hawk_mac import BadHeader, mac_input, mac_matches, parse_header, payload_hash
from tclocal.core.scopes import VALID_SCOPE, satisfies
from tclocal.core.timestamps import now

ANONYMOUS = "assume:anonymous"
_BEWIT = re.compile(r"^(?P<path>[^?]*)\?(?P<before>(?:[^&]*&)*?)bewit=(?P<bewit>[^&]*)(?P<after>&.*)?\Z")


class AuthFailed(Exception):
    """Authentication failed; the message is shown to the caller with a 401."""


@dataclass(frozen=True)
class ClientRecord:
    """What authentication needs to know about a client (scopes already role-expanded)."""

    access_token: str
    scopes: list[str]
    expires: float
    disabled: bool = False


@dataclass(frozen=True)
class Identity:
    """The authenticated caller: clientId (None when anonymous), expanded scopes, expiry."""

    client_id: str | None
    scopes: list[str]
    expires: float


ClientLookup = Callable[[str], ClientRecord | None]
Expand = Callable[[list[str]], list[str]]


def _decode_ext(ext: str) -> dict[str, Any]:
    """Parse Hawk `ext`: base64 (standard or url-safe, padding optional) of a JSON object."""
    try:
        raw = base64.b64decode(ext.replace("-", "+").replace("_", "/") + "=" * (-len(ext) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError) as err:
        raise AuthFailed("Failed to parse ext") from err
    if not isinstance(value, dict):
        raise AuthFailed("Failed to parse ext")
    return value


class Authenticator:
    """Turns a request's Hawk header or bewit into an Identity, or raises AuthFailed."""

    def __init__(self, lookup: ClientLookup, expand: Expand, skew: float = 900.0) -> None:
        self._lookup = lookup
        self._expand = expand
        self.skew = skew

    def anonymous(self) -> Identity:
        """The identity of a caller without credentials."""
        return Identity(None, self._expand([ANONYMOUS]), now() + 15 * 60)

    def _load(self, client_id: str) -> ClientRecord:
        # Upstream's resolver (loadClient) words these, the `: ` of the last one included.
        record = self._lookup(client_id)
        if record is None:
            raise AuthFailed(f"Client with clientId '{client_id}' not found")
        if record.disabled:
            raise AuthFailed(f"Client with clientId '{client_id}' is disabled")
        if record.expires < now():
            raise AuthFailed(f"Client with clientId: '{client_id}' has expired")
        return record

    def credentials(self, client_id: str, ext: str | None) -> tuple[str, Identity]:
        """Resolve the key and identity for `client_id`, applying certificate/authorizedScopes."""
        parsed = _decode_ext(ext) if ext else {}
        cert = parsed.get("certificate")
        issuer = client_id
        if isinstance(cert, dict) and "issuer" in cert:
            issuer = cert["issuer"]
            if not isinstance(issuer, str):
                raise AuthFailed("ext.certificate.issuer must be a string")
            if issuer == client_id:
                raise AuthFailed("ext.certificate.issuer must differ from the supplied clientId")
        record = self._load(issuer)
        key, scopes, expires = record.access_token, record.scopes, record.expires
        if cert is not None:
            try:
                verified = certificates.verify(
                    cert,
                    credential_name=client_id,
                    issuer_id=issuer,
                    issuer_token=record.access_token,
                    issuer_scopes=record.scopes,
                    now_ms=now() * 1000,
                )
            except certificates.CertificateError as err:
                raise AuthFailed(str(err)) from err
            key, scopes, expires = verified.access_token, verified.scopes, min(expires, verified.expires)
        if "authorizedScopes" in parsed:
            authorized = parsed["authorizedScopes"]
            if not isinstance(authorized, list) or not all(
                isinstance(s, str) and VALID_SCOPE.match(s) for s in authorized
            ):
                raise AuthFailed("ext.authorizedScopes must be an array of valid scopes")
            if not satisfies(self._expand([*scopes, ANONYMOUS]), {"AllOf": authorized}):
                raise AuthFailed("Supplied credentials do not satisfy authorizedScopes")
            scopes = authorized
        return key, Identity(client_id, self._expand([*scopes, ANONYMOUS]), expires)

    def from_header(
        self, *, authorization: str, method: str, url: str, content: bytes, content_type: str
    ) -> Identity:
        """Check a Hawk Authorization header against the request (url includes host and port).

        As upstream, a payload hash is checked when the client sent one (the official clients
        do) and not required otherwise.
        """
        try:
            attributes = parse_header(authorization)
        except BadHeader as err:
            raise AuthFailed(f"Bad Hawk header: {err}") from err
        key, identity = self.credentials(attributes["id"], attributes.get("ext"))
        request = mac_input(
            url=url,
            method=method,
            key=key,
            ts=attributes["ts"],
            nonce=attributes["nonce"],
            ext=attributes.get("ext"),
            app=attributes.get("app"),
        )
        given_hash = attributes.get("hash")
        if not mac_matches("header", request, given_hash, attributes["mac"]):
            raise AuthFailed("Bad mac: the request signature does not match")
        if given_hash is not None and given_hash != payload_hash(content, content_type):
            raise AuthFailed("Invalid payload hash: the body does not match the signed hash")
        if not attributes["ts"].isdigit() or abs(int(attributes["ts"]) - now()) > self.skew:
            raise AuthFailed("Stale timestamp: the request is outside the accepted clock skew")
        return identity

    def from_bewit(self, *, url: str) -> Identity:
        """Check a `bewit=` signed URL (GET only); `url` is absolute, as the client signed it."""
        scheme_host, _, raw_path = url.partition("://")[2].partition("/")
        match = _BEWIT.match("/" + raw_path)
        if match is None:
            raise AuthFailed("No bewit in the URL")
        token = match.group("bewit")
        try:
            padded = token + "=" * (-len(token) % 4)
            parts = base64.urlsafe_b64decode(padded).decode().split("\\")
        except (binascii.Error, UnicodeDecodeError) as err:
            raise AuthFailed("Invalid bewit encoding") from err
        if len(parts) != 4 or not parts[1].isdigit():
            raise AuthFailed("Invalid bewit structure")
        client_id, expiry, mac, ext = parts
        if int(expiry) < now():
            raise AuthFailed("Access expired")
        query = match.group("before") + (match.group("after") or "").lstrip("&")
        query = query.rstrip("&")
        original = f"{url.partition('://')[0]}://{scheme_host}{match.group('path')}"
        original += f"?{query}" if query else ""
        key, identity = self.credentials(client_id, ext or None)
        request = mac_input(url=original, method="GET", key=key, ts=expiry, nonce="", ext=ext or None)
        if not mac_matches("bewit", request, None, mac):
            raise AuthFailed("Bad mac in bewit")
        return identity
