"""Shared fixtures: a real tc-local service for every test that needs a Taskcluster platform."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tclocal.testing import RunningTCLocal, running_tclocal


@pytest.fixture(scope="session")
def tclocal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTCLocal]:
    """One tc-local for the whole session; tests isolate themselves by worker type / task ids."""
    data_dir: Path = tmp_path_factory.mktemp("tclocal-data")
    with running_tclocal(data_dir) as service:
        yield service
