"""Stateless-DNS host names for live log URLs (taskcluster/stateless-dns-go `hostname.New`).

A name encodes everything its DNS server needs to answer, so the server keeps no records:

    label = lower(base32(ipv4 (4) || expires ms since epoch, big-endian int64 (8) || salt (2)
                         || HMAC-SHA256(secret, those 14 bytes)[:16]))
    name  = label + "." + subdomain

30 bytes give exactly 48 base32 characters (no padding). The salt makes names for the same IP
and expiry differ; the HMAC lets the DNS server refuse names it did not issue. With a wildcard
certificate for the subdomain, the live log can then be served over HTTPS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_SIGNED = 14
"""Bytes covered by the HMAC: IPv4 (4), expiry (8), salt (2)."""

_LABEL_CHARS = 48
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stateless_dns_name(
    ip: str, subdomain: str, expires: datetime, secret: str, *, salt: bytes | None = None
) -> str:
    """The host name `<label>.<subdomain>` that resolves to IPv4 `ip` until `expires`.

    `salt` (2 bytes) is random unless given (tests give it to get a known name).
    """
    packed_ip = ipaddress.IPv4Address(ip).packed
    if salt is None:
        salt = os.urandom(2)
    if len(salt) != 2:
        raise ValueError("the salt is 2 bytes")
    millis = (expires - _EPOCH) // timedelta(milliseconds=1)  # exact: no float rounding
    content = packed_ip + struct.pack(">q", millis) + salt
    signature = hmac.new(secret.encode(), content, hashlib.sha256).digest()[:16]
    label = base64.b32encode(content + signature).decode("ascii")
    return f"{label}.{subdomain}".lower()


@dataclass(frozen=True)
class DecodedName:
    """What a stateless-DNS name says: the IPv4 address, the expiry and the salt."""

    ip: str
    expires: datetime
    salt: bytes


def decode_stateless_dns_name(name: str, subdomain: str, secret: str) -> DecodedName:
    """Decode and verify `name` as the DNS server does (stateless-dns-go `hostname.Decode`).

    Raises ValueError if it is not under `subdomain`, is malformed, or its HMAC is wrong.
    """
    suffix = "." + subdomain.lower()
    name = name.lower()
    if not name.endswith(suffix):
        raise ValueError(f"{name!r} is not under {subdomain!r}")
    label = name[: -len(suffix)]
    if len(label) != _LABEL_CHARS or "." in label:
        raise ValueError(f"{label!r} is not a {_LABEL_CHARS}-character stateless-DNS label")
    try:
        raw = base64.b32decode(label.upper())
    except ValueError as e:
        raise ValueError(f"{label!r} is not base32: {e}") from None
    content, signature = raw[:_SIGNED], raw[_SIGNED:]
    expected = hmac.new(secret.encode(), content, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(signature, expected):
        raise ValueError("the name's signature does not match the secret")
    (millis,) = struct.unpack(">q", content[4:12])
    return DecodedName(
        ip=str(ipaddress.IPv4Address(content[:4])),
        expires=_EPOCH + timedelta(milliseconds=millis),
        salt=content[12:14],
    )
