"""A report the queue refuses as invalid (400) never leaves the run `running` (TARGET §11).

The worker talks to the real tc-local through a proxy that answers one report call with 400;
the worker logs the refusal and resolves the run `exception/internal-error` instead.
"""

from collections.abc import AsyncIterator, Callable

import pytest

from generic_worker.exitcodes import ExitCode
from tclocal.testing import RunningTCLocal
from tests.artifacts.faulty_network import FaultyProxy

from .harness import GW


@pytest.fixture
async def proxy(tc: RunningTCLocal) -> AsyncIterator[FaultyProxy]:
    faulty = FaultyProxy(tc.root_url)
    await faulty.start()
    yield faulty
    await faulty.stop()


def _report(kind: str) -> Callable[[str, str], bool]:
    return lambda method, path: method == "POST" and path.endswith(f"/{kind}")


@pytest.mark.parametrize(
    ("command", "refused"),
    [("exit 0", "completed"), ("exit 1", "failed")],
)
async def test_a_refused_report_resolves_internal_error(
    gw: GW, proxy: FaultyProxy, caplog: pytest.LogCaptureFixture, command: str, refused: str
) -> None:
    task_id = await gw.submit({"command": [["/bin/sh", "-c", command]], "maxRunTime": 30})
    proxy.add(_report(refused), "status:400", times=1)
    assert await gw.run(rootURL=proxy.url) == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "exception/internal-error"
    assert proxy.seen.count("POST", f"/{refused}") == 1
    assert proxy.seen.count("POST", "/exception") == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("the queue refused" in m and "exception/internal-error instead" in m for m in messages)
