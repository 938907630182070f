"""The chain-of-trust signing keys: loading them once at worker start, and signing with them.

- ed25519 (`ed25519SigningKeyLocation`, upstream's format: base64 of the 32-byte seed): a raw
  64-byte signature of the certificate's exact bytes (`public/chain-of-trust.json.sig`);
- OpenPGP (`signingKeyLocation`, the seed's armoured private key): the certificate plus a
  newline, clear-signed with SHA-256 (`public/chainOfTrust.json.asc`), which `gpg --verify` checks.

Signing is CPU work (an RSA-4096 signature takes a few hundred ms): callers run it in a thread.
"""

from __future__ import annotations

import binascii
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from generic_worker.config import Config
from generic_worker.keypairs import import_pgpy, load_ed25519_private_key


class SigningKeyError(Exception):
    """A configured signing key could not be loaded; the message names the file and the config key."""


@dataclass(frozen=True)
class KeyFile:
    """Where one private key lives, and the config key that names it (for messages)."""

    path: Path
    config_key: str


@dataclass(frozen=True)
class SigningKeys:
    """The worker's chain-of-trust keys; at least one is set when chain of trust is usable."""

    ed25519: Ed25519PrivateKey | None = None
    openpgp: Any = None  # a PGPy private key (PGPy has no type hints)
    files: tuple[KeyFile, ...] = ()

    def sign_ed25519(self, data: bytes) -> bytes:
        """The raw 64-byte ed25519 signature of `data`."""
        assert self.ed25519 is not None
        return self.ed25519.sign(data)

    def clearsign(self, text: str) -> str:
        """`text` clear-signed with the OpenPGP key (SHA-256), armoured, ending with a newline."""
        assert self.openpgp is not None
        pgpy = import_pgpy()
        from pgpy.constants import HashAlgorithm  # noqa: PLC0415 - PGPy is imported lazily

        message = pgpy.PGPMessage.new(text, cleartext=True)
        message |= self.openpgp.sign(message, hash=HashAlgorithm.SHA256)
        armoured = str(message)
        return armoured if armoured.endswith("\n") else armoured + "\n"


def key_files(config: Config) -> tuple[KeyFile, ...]:
    """The configured private key files (either, both or none)."""
    files = []
    if config.ed25519_signing_key_location:
        files.append(KeyFile(Path(config.ed25519_signing_key_location), "ed25519SigningKeyLocation"))
    if config.signing_key_location:
        files.append(KeyFile(Path(config.signing_key_location), "signingKeyLocation"))
    return tuple(files)


def load_signing_keys(config: Config) -> SigningKeys:
    """Read and parse every configured key (blocking); SigningKeyError saying what is wrong."""
    files = key_files(config)
    ed25519 = openpgp = None
    for file in files:
        if file.config_key == "ed25519SigningKeyLocation":
            ed25519 = _load(file, _read_ed25519)
        else:
            openpgp = _load(file, _read_openpgp)
    return SigningKeys(ed25519=ed25519, openpgp=openpgp, files=files)


def _load(file: KeyFile, reader: Any) -> Any:
    try:
        return reader(file.path)
    except (OSError, ValueError, binascii.Error) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise SigningKeyError(
            f"Was not able to open chain of trust signing key file '{file.path}' "
            f"(config property '{file.config_key}'): {why}"
        ) from e


def _read_ed25519(path: Path) -> Ed25519PrivateKey:
    try:
        return load_ed25519_private_key(path)
    except (binascii.Error, UnicodeDecodeError) as e:
        raise ValueError(f"not a base64 ed25519 key seed ({e})") from e


def _read_openpgp(path: Path) -> Any:
    pgpy = import_pgpy()
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        with warnings.catch_warnings():
            # At start-up, before any other thread runs: PGPy warns about key details it ignores.
            warnings.simplefilter("ignore")
            key, _ = pgpy.PGPKey.from_blob(text)
    except (ValueError, TypeError, IndexError, KeyError, NotImplementedError, pgpy.errors.PGPError) as e:
        # PGPy reports malformed packets with assorted exception types.
        raise ValueError(f"not an armoured OpenPGP private key ({type(e).__name__}: {e})") from e
    if key.is_public:
        raise ValueError("it holds a public key, not a private key")
    if key.is_protected:
        raise ValueError("the private key is protected by a passphrase")
    return key
