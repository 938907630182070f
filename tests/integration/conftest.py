from collections.abc import Iterator
from pathlib import Path

import pytest

from tclocal.testing import RunningTCLocal, running_tclocal

from .harness import GW
from .superseder_service import superseder  # noqa: F401 - a fixture for every integration test


@pytest.fixture(scope="session")
def tc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTCLocal]:
    """tc-local with a short claimWork long-poll, so idle workers notice their timeouts quickly."""
    with running_tclocal(tmp_path_factory.mktemp("tc"), claim_work_wait=1.0) as service:
        yield service


@pytest.fixture
def gw(tc: RunningTCLocal, tmp_path: Path) -> GW:
    return GW(tc, tmp_path)
