"""The multiuser engine against tc-local: a fresh OS user per task, isolation, clean-up (root only)."""

from __future__ import annotations

import pwd
from pathlib import Path

import pytest

from generic_worker.exitcodes import ExitCode

from .harness import GW
from .multiuser_helpers import mu_root, multiuser, needs_root, task_users_of

__all__ = ["mu_root"]  # the fixture, used by name

pytestmark = [pytest.mark.root, needs_root]


async def test_task_runs_as_its_own_user_with_a_clean_environment(gw: GW, mu_root: Path) -> None:
    multiuser(gw, mu_root)
    task_id = await gw.submit(
        {
            "command": [["sh", "-c", "id -un; id -u; pwd; env | sort; stat -c '%U %a' .; ls generic-worker"]],
            "maxRunTime": 30,
            "env": {"FROM_PAYLOAD": "yes"},
        }
    )
    assert await gw.run(numberOfTasksToRun=1) == ExitCode.TASKS_COMPLETE
    log = await gw.log(task_id)
    assert await gw.resolution(task_id) == "failed/failed", log  # `ls generic-worker`: not readable
    lines = log.splitlines()
    name = next(line for line in lines if line.startswith("task_"))
    task_dir = mu_root / "tasks" / name
    assert str(task_dir) in lines
    assert f"HOME={task_dir}" in lines and f"USER={name}" in lines and f"LOGNAME={name}" in lines
    assert "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" in lines
    assert "FROM_PAYLOAD=yes" in lines
    assert f"{name} 700" in lines
    assert not any(line.startswith(("TASKCLUSTER_ACCESS_TOKEN", "SUDO_", "PYTEST")) for line in lines)
    assert "Permission denied" in log
    # The user is gone after the task.
    with pytest.raises(KeyError):
        pwd.getpwnam(name)
    assert task_users_of(mu_root / "tasks") == []
