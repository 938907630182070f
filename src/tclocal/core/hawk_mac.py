"""The Hawk wire format: parsing the Authorization header, payload hashes, and request MACs.

The MAC itself is mohawk's (`mohawk.util.calculate_mac`, the same normalised string the
official client signs). mohawk's `Receiver`, header parser and payload hasher are not used on
the hot path: they format debug output with `pprint` eagerly on every request (whole request
bodies included), which cost more CPU than everything else tc-local does per request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import urllib.parse
from dataclasses import dataclass

from mohawk.util import calculate_mac

_ATTRIBUTE = re.compile(r'\s*(\w+)="([^"\\]*)"\s*(?:,|\Z)')
_ALLOWED = {"id", "ts", "nonce", "hash", "ext", "mac", "app", "dlg"}
# The characters Hawk allows in attribute values (as mohawk.util.validate_header_attr).
_VALUE = re.compile(r"^[ a-zA-Z0-9_!#$%&'()*+,\-./:;<=>?@\[\]^`{|}~]*\Z")
MAX_HEADER = 4096


class BadHeader(ValueError):
    """The Authorization header is not a well-formed Hawk header."""


def parse_header(header: str) -> dict[str, str]:
    """Parse `Hawk id="..", ts="..", nonce="..", mac="..", ...` into its attributes."""
    if len(header) > MAX_HEADER:
        raise BadHeader("header too long")
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "hawk":
        raise BadHeader(f"unknown scheme {scheme!r}")
    attributes: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _ATTRIBUTE.match(rest, position)
        if match is None:
            raise BadHeader("could not parse the Hawk header")
        key, value = match.group(1), match.group(2)
        if key not in _ALLOWED or key in attributes or not _VALUE.match(value):
            raise BadHeader(f"bad or duplicate Hawk attribute {key!r}")
        attributes[key] = value
        position = match.end()
    for required in ("id", "ts", "nonce", "mac"):
        if required not in attributes:
            raise BadHeader(f"missing Hawk attribute {required!r}")
    return attributes


def payload_hash(body: bytes, content_type: str) -> str:
    """Hawk's payload hash: sha256 over the bare content type and the body."""
    bare = content_type.split(";", 1)[0].strip().lower()
    digest = hashlib.sha256(b"hawk.1.payload\n" + bare.encode() + b"\n" + body + b"\n")
    return base64.b64encode(digest.digest()).decode()


@dataclass(frozen=True)
class MacInput:
    """The parts of a request that a Hawk MAC covers (the attributes mohawk's MAC reads)."""

    credentials: dict[str, str]
    timestamp: str
    nonce: str
    method: str
    name: str
    host: str
    port: str
    ext: str | None
    app: str | None = None
    dlg: str | None = None


def mac_input(
    *, url: str, method: str, key: str, ts: str, nonce: str, ext: str | None, app: str | None = None
) -> MacInput:
    """Describe a request for MAC calculation; `url` is absolute (scheme, host, port, path)."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    resource = parts.path + (f"?{parts.query}" if parts.query else "")
    return MacInput(
        credentials={"key": key, "algorithm": "sha256"},
        timestamp=ts,
        nonce=nonce,
        method=method.upper(),
        name=resource,
        host=parts.hostname or "",
        port=str(port),
        ext=ext,
        app=app,
    )


def mac_matches(kind: str, request: MacInput, content_hash: str | None, given: str) -> bool:
    """Compare (in constant time) the MAC the client sent with the one computed by mohawk."""
    expected: bytes = calculate_mac(kind, request, content_hash)
    return hmac.compare_digest(expected, given.encode())
