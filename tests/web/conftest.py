"""A real tc-local for the web view's tests, and a finished pair of tasks run by the real worker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tclocal.testing import RunningTCLocal, running_tclocal
from tests.integration.harness import GW

HOSTILE = '<script>alert("pwned")</script>'


@pytest.fixture(scope="session")
def tc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTCLocal]:
    with running_tclocal(tmp_path_factory.mktemp("tc-web"), claim_work_wait=1.0) as service:
        yield service


@dataclass
class Finished:
    """Two resolved tasks: `hostile` (a `<script>` name and log line, ANSI colours, an artifact)
    and `dependent`, which depends on it."""

    gw: GW
    hostile: str
    dependent: str
    group: str


@pytest.fixture(scope="module")
def finished(tc: RunningTCLocal, tmp_path_factory: pytest.TempPathFactory) -> Finished:
    gw = GW(tc, tmp_path_factory.mktemp("web-worker"))
    script = f"printf '\\033[31mred text\\033[0m plain\\n'; echo '{HOSTILE}'; echo artifact-body > out.txt"

    async def scenario() -> Finished:
        hostile = await gw.submit(
            {
                "maxRunTime": 30,
                "command": [["/bin/sh", "-c", script]],
                "artifacts": [{"type": "file", "path": "out.txt", "name": "public/out.txt"}],
            },
            metadata={**gw.task()["metadata"], "name": f"{HOSTILE} build"},
        )
        status = await gw.status(hostile)
        dependent = await gw.submit(
            {"maxRunTime": 30, "command": [["echo", "dependent ran"]]},
            dependencies=[hostile],
            taskGroupId=status["taskGroupId"],
            metadata={**gw.task()["metadata"], "name": "dependent task"},
        )
        code = await gw.run(numberOfTasksToRun=2)
        assert int(code) == 0
        return Finished(gw, hostile, dependent, status["taskGroupId"])

    return asyncio.run(scenario())
