"""A task's Taskcluster proxy serves only that task's user (multiuser engine, root only).

Two tasks run at once (capacity 2), each as its own OS user with its own proxy. Task A hands its
proxy URL to task B through a shared directory; B's request to it is refused (403, nothing
signed) while A's own request through it succeeds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from generic_worker.exitcodes import ExitCode

from .harness import GW
from .multiuser_helpers import mu_root, multiuser, needs_root

__all__ = ["mu_root"]  # the fixture, used by name

pytestmark = [
    pytest.mark.root,
    needs_root,
    pytest.mark.skipif(shutil.which("curl") is None, reason="the tasks use curl"),
]

WAIT = "i=0; while [ ! -e {path} ]; do i=$((i+1)); [ $i -lt 600 ] || exit 9; sleep 0.1; done"


def task(lines: list[str]) -> dict[str, object]:
    return {
        "command": [["/bin/sh", "-ec", "\n".join(lines)]],
        "maxRunTime": 90,
        "features": {"taskclusterProxy": True},
    }


async def test_another_tasks_user_gets_403_from_a_proxy(gw: GW, mu_root: Path) -> None:
    multiuser(gw, mu_root, capacity=2)
    shared = mu_root / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    code = "curl -s -o /dev/null -w 'HTTP %{http_code}\\n'"
    a = await gw.submit(
        task(
            [
                f'echo "$TASKCLUSTER_PROXY_URL" > {shared}/a.url.tmp',
                f"mv {shared}/a.url.tmp {shared}/a.url",
                f'echo "own: $({code} "$TASKCLUSTER_PROXY_URL/api/queue/v1/task/$TASK_ID")"',
                WAIT.format(path=f"{shared}/b.done"),
            ]
        )
    )
    b = await gw.submit(
        task(
            [
                WAIT.format(path=f"{shared}/a.url"),
                f'echo "other: $({code} "$(cat {shared}/a.url)/api/queue/v1/task/{a}")"',
                f'curl -s "$(cat {shared}/a.url)/api/queue/v1/task/{a}"; echo',
                f"touch {shared}/b.done",
            ]
        )
    )
    assert await gw.run(numberOfTasksToRun=2) == ExitCode.TASKS_COMPLETE
    log_a, log_b = await gw.log(a), await gw.log(b)
    assert await gw.resolution(a) == "completed/completed", log_a
    assert await gw.resolution(b) == "completed/completed", log_b
    assert "own: HTTP 200" in log_a
    assert "other: HTTP 403" in log_b
    assert "this proxy serves only the processes of its task's user" in log_b
    assert '"taskId"' not in log_b and "provisionerId" not in log_b  # nothing was forwarded
