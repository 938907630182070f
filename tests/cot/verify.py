"""Independent checks of published chain-of-trust files: real gpg, `cryptography`, scriptworker's rules.

Used by the unit tests and the integration tests. Nothing here uses the worker's own code:
the checks are what a consumer (gpg, scriptworker) does with the files.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from generic_worker.keypairs import new_ed25519_keypair, new_openpgp_keypair

# What scriptworker requires of a certificate (its cot_v1 schema, in our words): these members
# with these JSON types, and a task definition with these members.
REQUIRED_MEMBERS = {
    "artifacts": dict,
    "chainOfTrustVersion": int,
    "environment": dict,
    "runId": int,
    "task": dict,
    "taskId": str,
    "workerGroup": str,
    "workerId": str,
}
REQUIRED_TASK_MEMBERS = {
    "dependencies": list,
    "payload": dict,
    "scopes": list,
    "taskGroupId": str,
    "workerType": str,
}
VALID_HASH_ALGORITHMS = ("sha256", "sha512")


@dataclass(frozen=True)
class KeySet:
    """A fresh key pair of each kind, written as an operator would with our CLI's key commands."""

    ed25519_private: Path
    ed25519_public: str  # base64, as scriptworker's config lists it
    openpgp_private: Path
    openpgp_public: str  # armoured


def make_keys(directory: Path) -> KeySet:
    """Generate both key pairs into `directory` (root-only files, as the multiuser engine needs)."""
    ed_private = directory / "ed25519_private_key"
    pgp_private = directory / "openpgp_private_key"
    ed_public = new_ed25519_keypair(ed_private).strip()
    pgp_public = new_openpgp_keypair(pgp_private)
    return KeySet(ed_private, ed_public, pgp_private, pgp_public)


def gpg_verify(signed: str, public_key: str) -> tuple[bool, str]:
    """Run the real `gpg --verify` on a clear-signed text: (verified, gpg's stderr)."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "GNUPGHOME": home}
        run = {"env": env, "capture_output": True, "text": True, "check": False}
        imported = subprocess.run(["gpg", "--batch", "--import"], input=public_key, **run)  # type: ignore[call-overload]
        assert imported.returncode == 0, imported.stderr
        verified = subprocess.run(["gpg", "--batch", "--verify"], input=signed, **run)  # type: ignore[call-overload]
        return verified.returncode == 0, str(verified.stderr)


def gpg_plaintext(signed: str, public_key: str) -> str:
    """The text gpg extracts from a clear-signed message (after verifying it)."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "GNUPGHOME": home}
        subprocess.run(
            ["gpg", "--batch", "--import"],
            input=public_key,
            env=env,
            text=True,
            check=True,
            capture_output=True,
        )
        out = subprocess.run(
            ["gpg", "--batch", "--decrypt"], input=signed, env=env, text=True, check=True, capture_output=True
        )
        return out.stdout


def ed25519_verifies(public_key_b64: str, content: bytes, signature: bytes) -> bool:
    """scriptworker's check: the raw signature verifies against the base64 public key."""
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
    try:
        key.verify(signature, content)
    except Exception:  # noqa: BLE001 - InvalidSignature, or a malformed signature
        return False
    return True


def check_like_scriptworker(
    content: bytes, signature: bytes, public_key_b64: str, task_id: str, downloads: Mapping[str, bytes]
) -> dict[str, Any]:
    """What scriptworker does with a generic-worker's certificate; the parsed certificate.

    Signature over the exact bytes, the document's shape, its taskId, then each downloaded
    artifact's hash against the certificate.
    """
    assert len(signature) == 64
    assert ed25519_verifies(public_key_b64, content, signature)
    cert: dict[str, Any] = json.loads(content)
    for member, kind in REQUIRED_MEMBERS.items():
        assert isinstance(cert.get(member), kind), (member, cert.get(member))
    for member, kind in REQUIRED_TASK_MEMBERS.items():
        assert isinstance(cert["task"].get(member), kind), member
    assert cert["chainOfTrustVersion"] == 1
    assert cert["taskId"] == task_id
    for name, data in downloads.items():
        hashes = cert["artifacts"][name]
        assert hashes, name
        for algorithm, expected in hashes.items():
            assert algorithm in VALID_HASH_ALGORITHMS
            assert hashlib.new(algorithm, data).hexdigest() == expected, name
    return cert
