"""SIGKILL the worker while a task runs `sleep 900`; the next worker leaves nothing of it running.

Both engines: the command's process leader dies with the worker (PR_SET_PDEATHSIG), and the
restarted worker finds what escaped (a `setsid` double fork, marked by TASK_WORKDIR; in the
multiuser engine also by the leftover task user's uid), kills it, deletes the leftover user and
the task directory, and logs what it cleaned.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from generic_worker.exitcodes import ExitCode

from .harness import GW, wait_for
from .multiuser_helpers import mu_root, multiuser, needs_root, task_users_of

__all__ = ["mu_root"]

SCRIPT = Path(sys.executable).parent / "generic-worker"
ESCAPE = "setsid sh -c 'sleep 901 & sleep 902' & sleep 900"


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def marked(tasks_dir: Path) -> list[psutil.Process]:
    """Live processes started in a task directory of `tasks_dir`."""
    prefix = str(tasks_dir.resolve()) + "/task_"
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get("TASK_WORKDIR", "").startswith(
                prefix
            ):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.parametrize(
    "engine", ["insecure", pytest.param("multiuser", marks=[pytest.mark.root, needs_root])]
)
async def test_nothing_survives_a_sigkilled_worker(
    gw: GW, mu_root: Path, engine: str, caplog: pytest.LogCaptureFixture
) -> None:
    if engine == "multiuser":
        multiuser(gw, mu_root, cachesDir=str(mu_root / "caches"))
    else:
        gw.raw_config["tasksDir"] = str(mu_root / "tasks")
    tasks_dir = mu_root / "tasks"
    config = gw.write_config(mu_root / "gw.config", cleanUpTaskDirs=True)
    config.chmod(0o600)
    body: dict[str, Any] = {"command": [["sh", "-c", ESCAPE]], "maxRunTime": 1200}
    scopes = []
    if engine == "multiuser":  # a cache bind-mounted into the task directory when the worker dies
        body["mounts"] = [{"directory": "c", "cacheName": "k"}]
        scopes = ["generic-worker:cache:k"]
    await gw.submit(body, scopes=scopes)
    worker = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "run",
        "--config",
        str(config),
        cwd=mu_root,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        running = await wait_for(lambda: len(marked(tasks_dir)) >= 4 and marked(tasks_dir), timeout=60)
        (leader,) = [p for p in running if p.ppid() == worker.pid]
    finally:
        worker.kill()
        await worker.wait()
    users = task_users_of(tasks_dir)
    assert len(users) == (1 if engine == "multiuser" else 0)
    # The command's leader (sh) dies with the worker (PR_SET_PDEATHSIG); its escaped descendants do not.
    await wait_for(lambda: not alive(leader))
    survivors = [p for p in running if alive(p)]
    assert len(survivors) == len(running) - 1 >= 3
    caplog.set_level("INFO")
    assert (
        await gw.run(numberOfTasksToRun=0, idleTimeoutSecs=1, cleanUpTaskDirs=True) == ExitCode.IDLE_TIMEOUT
    )
    assert marked(tasks_dir) == []
    assert not any(alive(p) for p in running)
    assert task_users_of(tasks_dir) == []
    assert list(tasks_dir.iterdir()) == []
    text = caplog.text
    assert "left by an earlier run" in text and "sleep 90" in text
    if engine == "multiuser":
        assert f"deleted task user {users[0]}" in text
        assert "left mounted by an earlier run" in text
        assert str(mu_root) not in Path("/proc/self/mountinfo").read_text()
