r"""Temporary credentials: issuing certificates and checking them, byte-compatible with upstream.

A certificate is `{version: 1, scopes, start, expiry, seed, signature[, issuer]}` (times in
epoch milliseconds). The signature is base64 HMAC-SHA256, keyed by the issuer's access token,
over `version:1\\n[clientId:..\\nissuer:..\\n]seed:..\\nstart:..\\nexpiry:..\\nscopes:\\n<scopes>`;
the temporary access token is unpadded url-safe base64 of HMAC-SHA256(issuer token, seed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from tclocal.core.scopes import VALID_SCOPE, satisfies

MAX_LIFETIME_MS = 31 * 24 * 3600 * 1000
CLOCK_DRIFT_MS = 5 * 60 * 1000


class CertificateError(ValueError):
    """The certificate is malformed, forged, expired or exceeds its issuer's scopes."""


def _hmac(key: str, text: str) -> bytes:
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).digest()


def temporary_key(issuer_token: str, seed: str) -> str:
    """The access token that goes with a certificate's seed."""
    return base64.urlsafe_b64encode(_hmac(issuer_token, seed)).decode().rstrip("=")


def _signed_text(cert: dict[str, Any], client_id: str) -> str:
    lines = ["version:1"]
    if cert.get("issuer"):
        lines += [f"clientId:{client_id}", f"issuer:{cert['issuer']}"]
    lines += [f"seed:{cert['seed']}", f"start:{cert['start']}", f"expiry:{cert['expiry']}"]
    lines += ["scopes:", *cert["scopes"]]
    return "\n".join(lines)


def issue(
    *,
    issuer_id: str,
    issuer_token: str,
    client_id: str | None,
    scopes: list[str],
    start_ms: int,
    expiry_ms: int,
) -> dict[str, str]:
    """Create temporary credentials `{clientId, accessToken, certificate}` (certificate as JSON).

    With `client_id` different from the issuer they are *named* credentials (`issuer` in the
    certificate), which the issuer may only create if it holds `auth:create-client:<clientId>`.
    """
    seed = base64.urlsafe_b64encode(secrets.token_bytes(33)).decode()  # 44 characters, as upstream requires
    cert: dict[str, Any] = {
        "version": 1,
        "scopes": list(scopes),
        "start": start_ms,
        "expiry": expiry_ms,
        "seed": seed,
    }
    name = client_id or issuer_id
    if name != issuer_id:
        cert["issuer"] = issuer_id
    cert["signature"] = base64.b64encode(_hmac(issuer_token, _signed_text(cert, name))).decode()
    return {
        "clientId": name,
        "accessToken": temporary_key(issuer_token, seed),
        "certificate": json.dumps(cert, separators=(",", ":")),
    }


@dataclass(frozen=True)
class Verified:
    """What a valid certificate grants: its scopes, key and expiry (epoch seconds)."""

    scopes: list[str]
    access_token: str
    expires: float


def _check_shape(cert: Any) -> None:
    if not isinstance(cert, dict):
        raise CertificateError("ext.certificate must be a JSON object")
    if cert.get("version") != 1:
        raise CertificateError("ext.certificate.version must be 1")
    if not isinstance(cert.get("seed"), str) or len(cert["seed"]) != 44:
        raise CertificateError("ext.certificate.seed must be a string of 44 characters")
    for field in ("start", "expiry"):
        value = cert.get(field)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CertificateError(f"ext.certificate.{field} must be a number")
    scopes = cert.get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(s, str) and VALID_SCOPE.match(s) for s in scopes):
        raise CertificateError("ext.certificate.scopes must be an array of valid scopes")


def verify(
    cert: Any,
    *,
    credential_name: str,
    issuer_id: str,
    issuer_token: str,
    issuer_scopes: list[str],
    now_ms: float,
) -> Verified:
    """Check a certificate presented under `credential_name`, issued by `issuer_id`."""
    _check_shape(cert)
    if cert["start"] > now_ms + CLOCK_DRIFT_MS:
        raise CertificateError("ext.certificate.start > now")
    if cert["expiry"] < now_ms - CLOCK_DRIFT_MS:
        raise CertificateError("ext.certificate.expiry < now")
    if cert["expiry"] - cert["start"] > MAX_LIFETIME_MS:
        raise CertificateError("ext.certificate cannot last longer than 31 days!")
    if issuer_id != credential_name:
        create_scope = f"auth:create-client:{credential_name}"
        if not satisfies(issuer_scopes, create_scope):
            raise CertificateError(
                f"ext.certificate issuer `{issuer_id}` doesn't have `{create_scope}` for supplied clientId."
            )
    elif "clientId" in cert:
        raise CertificateError("ext.certificate.clientId must only be used with issuer")
    if not satisfies(issuer_scopes, {"AllOf": list(cert["scopes"])}):
        raise CertificateError(
            f"ext.certificate issuer `{issuer_id}` doesn't satisfy all certificate scopes."
        )
    expected = base64.b64encode(_hmac(issuer_token, _signed_text(cert, credential_name)))
    signature = cert.get("signature")
    if not isinstance(signature, str) or not hmac.compare_digest(signature.encode(), expected):
        raise CertificateError("ext.certificate.signature is not valid")
    return Verified(
        scopes=list(cert["scopes"]),
        access_token=temporary_key(issuer_token, cert["seed"]),
        expires=cert["expiry"] / 1000,
    )
