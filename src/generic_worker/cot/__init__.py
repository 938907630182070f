"""Chain of trust: the signed certificate of a task run's artifacts (feature `chainOfTrust`).

- `certificate`: the document (upstream's version 1) and its exact bytes;
- `signing`: the worker's ed25519 and OpenPGP keys, loaded once, and the two signature formats;
- `files`: writing the certificate files afresh into the task's `generic-worker` directory.

The feature itself (`features/chain_of_trust.py`) decides when and what to publish.
"""

from generic_worker.cot.certificate import (
    RunIdentity,
    build_certificate,
    environment_of,
    render,
    with_additional_data,
)
from generic_worker.cot.signing import KeyFile, SigningKeyError, SigningKeys, key_files, load_signing_keys

__all__ = [
    "KeyFile",
    "RunIdentity",
    "SigningKeyError",
    "SigningKeys",
    "build_certificate",
    "environment_of",
    "key_files",
    "load_signing_keys",
    "render",
    "with_additional_data",
]
