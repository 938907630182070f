"""One set of freshly generated signing keys for the chain-of-trust unit tests."""

from __future__ import annotations

import pytest

from .verify import KeySet, make_keys


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    """ed25519 and OpenPGP key pairs, written by the worker's own key commands."""
    return make_keys(tmp_path_factory.mktemp("cot-keys"))
