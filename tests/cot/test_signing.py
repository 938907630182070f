"""Loading the signing keys and signing: checked by real gpg and by `cryptography`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from generic_worker.config import config_from_mapping
from generic_worker.cot import SigningKeyError, load_signing_keys

from .verify import KeySet, ed25519_verifies, gpg_plaintext, gpg_verify

needs_gpg = pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg not installed (make system-deps)")
DOCUMENT = '{\n  "chainOfTrustVersion": 1,\n  "x": "- dash \\u003c"\n}'


def config(**keys: str):
    base = {"rootURL": "http://x", "accessToken": "a", "clientId": "c", "workerId": "w", "workerType": "t"}
    return config_from_mapping({**base, "enableLiveLog": False, "runTasksAsCurrentUser": False, **keys})[0]


def test_both_keys_load_and_sign(keys: KeySet):
    loaded = load_signing_keys(
        config(
            ed25519SigningKeyLocation=str(keys.ed25519_private), signingKeyLocation=str(keys.openpgp_private)
        )
    )
    assert [f.config_key for f in loaded.files] == ["ed25519SigningKeyLocation", "signingKeyLocation"]
    data = DOCUMENT.encode()
    signature = loaded.sign_ed25519(data)
    assert len(signature) == 64
    assert ed25519_verifies(keys.ed25519_public, data, signature)
    assert not ed25519_verifies(keys.ed25519_public, data + b" ", signature)


def test_only_the_configured_key_is_loaded(keys: KeySet):
    loaded = load_signing_keys(config(ed25519SigningKeyLocation=str(keys.ed25519_private)))
    assert loaded.ed25519 is not None and loaded.openpgp is None
    loaded = load_signing_keys(config(signingKeyLocation=str(keys.openpgp_private)))
    assert loaded.ed25519 is None and loaded.openpgp is not None


@needs_gpg
def test_the_clear_signed_document_verifies_with_real_gpg(keys: KeySet):
    loaded = load_signing_keys(config(signingKeyLocation=str(keys.openpgp_private)))
    signed = loaded.clearsign(DOCUMENT + "\n")
    assert signed.startswith("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n")
    assert signed.endswith("-----END PGP SIGNATURE-----\n")
    ok, why = gpg_verify(signed, keys.openpgp_public)
    assert ok, why
    assert "Generic-Worker <taskcluster-accounts+gpgsigning@mozilla.com>" in why
    assert gpg_plaintext(signed, keys.openpgp_public).startswith(DOCUMENT + "\n")
    tampered = signed.replace('"x"', '"y"')
    assert not gpg_verify(tampered, keys.openpgp_public)[0]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "No such file or directory"),
        ("not base64 at all!\n", "not a base64 ed25519 key seed"),
        ("AAAA\n", "32 bytes"),
    ],
)
def test_an_unusable_ed25519_key_is_named_with_its_config_property(
    tmp_path: Path, content: str | None, why: str
):
    key = tmp_path / "ed25519"
    if content is not None:
        key.write_text(content)
    with pytest.raises(SigningKeyError) as caught:
        load_signing_keys(config(ed25519SigningKeyLocation=str(key)))
    message = str(caught.value)
    assert f"'{key}'" in message
    assert "ed25519SigningKeyLocation" in message
    assert why in message


def test_an_unusable_openpgp_key_is_refused(tmp_path: Path, keys: KeySet):
    public_only = tmp_path / "public.asc"
    public_only.write_text(keys.openpgp_public)
    garbage = tmp_path / "garbage.asc"
    garbage.write_text("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nAAAA\n-----END PGP PRIVATE KEY BLOCK-----\n")
    for path, why in (
        (public_only, "public key, not a private key"),
        (garbage, "not an armoured OpenPGP private key"),
    ):
        with pytest.raises(SigningKeyError, match="signingKeyLocation") as caught:
            load_signing_keys(config(signingKeyLocation=str(path)))
        assert why in str(caught.value)


@needs_gpg
@pytest.mark.parametrize("algorithm", ["rsa2048", "ed25519"])
def test_a_key_an_operator_made_with_gpg_signs_verifiably(tmp_path: Path, algorithm: str):
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    uid = f"Operator <ops-{algorithm}@example.com>"

    def gpg(*args: str) -> str:
        return subprocess.run(
            ["gpg", "--batch", *args], env=env, check=True, capture_output=True, text=True
        ).stdout

    gpg("--passphrase", "", "--quick-gen-key", uid, algorithm, "sign", "never")
    key = tmp_path / "private.asc"
    key.write_text(gpg("--armor", "--export-secret-keys", uid))
    public = gpg("--armor", "--export", uid)
    signed = load_signing_keys(config(signingKeyLocation=str(key))).clearsign(DOCUMENT + "\n")
    ok, why = gpg_verify(signed, public)
    assert ok, why
    assert uid in why
