"""Hawk headers and bewits made through the official client's code, checked by taking them apart."""

import base64
import json
import re
import time
from urllib.parse import parse_qs, urlsplit

from generic_worker.tc import Credentials
from generic_worker.tcproxy.signing import HawkSigner

CERTIFICATE = json.dumps(
    {"version": 1, "scopes": ["queue:*"], "start": 1, "expiry": 2, "seed": "s", "signature": "x"}
)
CREDENTIALS: Credentials = {
    "clientId": "task-client/abc/0",
    "accessToken": "secret-token",
    "certificate": CERTIFICATE,
}


def b64url_json(value: str) -> object:
    return json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))


def test_authorization_carries_the_certificate_and_authorized_scopes_and_no_payload_hash():
    signer = HawkSigner(CREDENTIALS, ["queue:get-artifact:private/x"])
    header = signer.authorization("POST", "http://127.0.0.1:9/api/queue/v1/task/abc?x=1")
    assert header.startswith("Hawk ")
    fields = dict(re.findall(r'(\w+)="([^"]*)"', header))
    assert fields["id"] == "task-client/abc/0"
    assert abs(int(fields["ts"]) - time.time()) < 5
    assert "hash" not in fields  # bodies are streamed, not hashed
    ext = b64url_json(fields["ext"])
    assert ext == {
        "certificate": json.loads(CERTIFICATE),
        "authorizedScopes": ["queue:get-artifact:private/x"],
    }
    assert "secret-token" not in header


def test_signed_url_adds_a_bewit_for_an_hour():
    signer = HawkSigner(CREDENTIALS, ["a"])
    signed = signer.signed_url("https://tc.example.com/api/queue/v1/task/abc/artifacts/private%2Fx?y=2", 3600)
    parts = urlsplit(signed)
    assert parts.path == "/api/queue/v1/task/abc/artifacts/private%2Fx"
    query = parse_qs(parts.query)
    assert query["y"] == ["2"]
    bewit = query["bewit"][0]
    assert "=" not in bewit  # padding stripped, as the official client does
    client_id, expires, _mac, ext = (
        base64.urlsafe_b64decode(bewit + "=" * (-len(bewit) % 4)).decode().split("\\")
    )
    assert client_id == "task-client/abc/0"
    assert 3590 < int(expires) - time.time() <= 3600
    assert b64url_json(ext)["authorizedScopes"] == ["a"]  # type: ignore[index]
