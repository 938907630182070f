"""The multiuser engine against tc-local: a fresh OS user per task, isolation, clean-up (root only)."""

from __future__ import annotations

import base64
import grp
import io
import os
import pwd
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from generic_worker.exitcodes import ExitCode
from generic_worker.multiuser.idmap import CACHE_OWNER

from .harness import GW
from .multiuser_helpers import mu_root, multiuser, needs_root, task_users_of

__all__ = ["mu_root"]  # the fixture, used by name

pytestmark = [pytest.mark.root, needs_root]


async def test_task_runs_as_its_own_user_with_a_clean_environment(gw: GW, mu_root: Path) -> None:
    multiuser(gw, mu_root)
    task_id = await gw.submit(
        {
            "command": [
                [
                    "sh",
                    "-c",
                    "id -un; id -u; pwd; env | sort; stat -c '%U %a' .; readlink /proc/self/fd/1; "
                    "mv generic-worker moved || echo could not move; ls generic-worker",
                ]
            ],
            "maxRunTime": 30,
            "env": {"FROM_PAYLOAD": "yes"},
        }
    )
    assert await gw.run(numberOfTasksToRun=1, cleanUpTaskDirs=True) == ExitCode.TASKS_COMPLETE
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
    assert any(line.startswith("pipe:[") for line in lines)  # never the log file itself
    assert not any(line.startswith(("TASKCLUSTER_ACCESS_TOKEN", "SUDO_", "PYTEST")) for line in lines)
    assert "Permission denied" in log
    assert "could not move" in log and "=== Task Starting ===" in log  # the worker's log, not a fake
    # The user, its home (the task directory) and the worker's pin on its folder are gone.
    with pytest.raises(KeyError):
        pwd.getpwnam(name)
    assert not task_dir.exists()
    assert str(task_dir) not in Path("/proc/self/mountinfo").read_text()
    assert task_users_of(mu_root / "tasks") == []


def cache_payload(script: str) -> dict[str, Any]:
    return {
        "command": [["sh", "-c", script]],
        "maxRunTime": 30,
        "mounts": [{"directory": "c", "cacheName": "shared"}],
    }


async def test_a_cache_written_by_one_task_user_is_fully_writable_by_the_next(gw: GW, mu_root: Path) -> None:
    multiuser(gw, mu_root, cachesDir=str(mu_root / "caches"))
    first = await gw.submit(
        cache_payload(
            "set -e; cd c; echo one > plain; echo secret > private; chmod 600 private; "
            "mkdir -p deep/er; echo x > deep/er/f; chmod 555 deep/er; ln -s /etc/shadow link; whoami > owner"
        ),
        scopes=["generic-worker:cache:shared"],
    )
    second = await gw.submit(
        cache_payload(
            'set -e; cd c; test "$(cat owner)" != "$(whoami)"; echo two >> plain; cat private; '
            "echo more >> private; chmod 755 deep/er; rm -r deep; rm link; touch -d 2001-01-01 plain; "
            "mkdir new; echo done"
        ),
        scopes=["generic-worker:cache:shared"],
    )
    assert await gw.run(numberOfTasksToRun=2) == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(first) == "completed/completed", await gw.log(first)
    log = await gw.log(second)
    assert await gw.resolution(second) == "completed/completed", log
    # Handed over by an idmapped bind mount: no file was chown'ed, and on disk everything the
    # two task users wrote belongs to the caches' owner.
    assert "[mounts] Mounting existing writable directory cache shared from " in log
    owner = pwd.getpwnam(CACHE_OWNER).pw_uid
    (stored,) = (mu_root / "caches").iterdir()
    assert {p.lstat().st_uid for p in [stored, *stored.rglob("*")]} == {owner}
    assert sorted(p.name for p in stored.iterdir()) == ["new", "owner", "plain", "private"]
    assert os.stat("/etc/shadow").st_uid == 0
    assert not any(str(mu_root) in line for line in Path("/proc/self/mountinfo").read_text().splitlines())


async def test_privileged_artifact_is_not_readable_and_mounts_stay_in_the_task_dir(
    gw: GW, mu_root: Path
) -> None:
    multiuser(gw, mu_root, cachesDir=str(mu_root / "caches"))
    artifacts = [
        {"type": "file", "path": "generic-worker/live_backing.log", "name": "public/root-only"},
        {"type": "file", "path": "escape", "name": "public/escape", "optional": True},
        {"type": "directory", "path": "out", "name": "public/out"},
    ]
    script = "mkdir out && echo mine > out/mine.txt && chmod -R go-rwx out && ln -s /etc/shadow escape"
    privileged = await gw.submit(
        {"command": [["sh", "-c", script]], "maxRunTime": 30, "artifacts": artifacts}
    )
    outside = await gw.submit(
        {"command": [["true"]], "maxRunTime": 30, "mounts": [{"directory": "../../..", "cacheName": "x"}]},
        scopes=["generic-worker:cache:x"],
    )
    assert await gw.run(numberOfTasksToRun=2) == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(privileged) == "failed/failed"
    found = await gw.artifacts(privileged)
    assert found["public/root-only"]["storageType"] == "error"
    status, _, body = await gw.fetch(privileged, "public/root-only")
    assert b"file-not-readable-on-worker" in body or status == 424, body
    assert found["public/escape"]["storageType"] == "error"
    assert await gw.content(privileged, "public/out/mine.txt") == b"mine\n"  # read as the task user
    assert await gw.resolution(outside) == "failed/failed"
    assert "outside the task directory" in await gw.log(outside)


async def test_run_task_as_current_user(gw: GW, mu_root: Path) -> None:
    multiuser(gw, mu_root)
    scope = f"generic-worker:run-task-as-current-user:{gw.config().task_queue_id}"
    body = {
        "command": [["sh", "-c", "id -u; echo HOME=$HOME"]],
        "maxRunTime": 30,
        "features": {"runTaskAsCurrentUser": True},
        "artifacts": [{"type": "file", "path": "generic-worker/live_backing.log", "name": "public/x"}],
    }
    as_root = await gw.submit(body, scopes=[scope])
    no_scope = await gw.submit(body)
    assert await gw.run(numberOfTasksToRun=2) == ExitCode.TASKS_COMPLETE
    log = await gw.log(as_root)
    assert await gw.resolution(as_root) == "completed/completed", log
    assert "\n0\n" in log
    assert (await gw.artifacts(as_root))["public/x"]["storageType"] == "s3"  # read as root
    assert await gw.resolution(no_scope) == "exception/malformed-payload"
    assert scope in await gw.log(no_scope)
    # Never next to another task.
    gw.raw_config["capacity"] = 2
    refused = await gw.submit(body, scopes=[scope])
    assert await gw.run(numberOfTasksToRun=1) == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(refused) == "exception/malformed-payload"
    assert "not enabled on this worker pool" in await gw.log(refused)


@pytest.fixture
def os_group() -> Iterator[str]:
    name = f"gwt{os.getpid() % 100000}"
    subprocess.run(["groupadd", name], check=True)
    yield name
    subprocess.run(["groupdel", name], check=False)


async def test_os_groups(gw: GW, mu_root: Path, os_group: str) -> None:
    multiuser(gw, mu_root)
    queue = gw.config().task_queue_id
    scope = f"generic-worker:os-group:{queue}/{os_group}"
    member = await gw.submit(
        {"command": [["id", "-Gn"]], "maxRunTime": 30, "osGroups": [os_group]}, scopes=[scope]
    )
    missing = await gw.submit(
        {"command": [["true"]], "maxRunTime": 30, "osGroups": ["no-such-group-gw"]},
        scopes=[f"generic-worker:os-group:{queue}/no-such-group-gw"],
    )
    unscoped = await gw.submit({"command": [["true"]], "maxRunTime": 30, "osGroups": [os_group]})
    assert await gw.run(numberOfTasksToRun=3) == ExitCode.TASKS_COMPLETE
    log = await gw.log(member)
    assert await gw.resolution(member) == "completed/completed", log
    assert os_group in log.split("Executing command 0")[1]
    assert grp.getgrnam(os_group).gr_mem == []  # the deleted user left the group
    assert await gw.resolution(missing) == "exception/malformed-payload"
    assert "could not add task user to OS group(s) [no-such-group-gw]" in await gw.log(missing)
    assert await gw.resolution(unscoped) == "exception/malformed-payload"
    assert scope in await gw.log(unscoped)


async def test_run_after_user_creation_runs_as_the_task_user(gw: GW, mu_root: Path) -> None:
    script = mu_root / "after.sh"
    script.write_text("#!/bin/sh\nwhoami > run-after-user.txt\n")
    script.chmod(0o755)
    multiuser(gw, mu_root, runAfterUserCreation=str(script))
    task_id = await gw.submit({"command": [["cat", "run-after-user.txt"]], "maxRunTime": 30})
    assert await gw.run(numberOfTasksToRun=1) == ExitCode.TASKS_COMPLETE
    log = await gw.log(task_id)
    assert await gw.resolution(task_id) == "completed/completed", log
    assert "\ntask_" in log


async def test_mounted_files_and_archives_belong_to_the_task_user(gw: GW, mu_root: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("a/b.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    multiuser(gw, mu_root, cachesDir=str(mu_root / "caches"), downloadsDir=str(mu_root / "downloads"))
    script = (
        "set -e; stat -c %U ro ro/a ro/a/b.txt sub/f.txt sub; echo more >> ro/a/b.txt; echo x >> sub/f.txt"
    )
    task_id = await gw.submit(
        {
            "command": [["sh", "-c", script]],
            "maxRunTime": 30,
            "mounts": [
                {
                    "directory": "ro",
                    "format": "tar.gz",
                    "content": {"base64": base64.b64encode(buffer.getvalue()).decode()},
                },
                {"file": "sub/f.txt", "content": {"raw": "file mount\n"}},
            ],
        }
    )
    assert await gw.run(numberOfTasksToRun=1) == ExitCode.TASKS_COMPLETE
    log = await gw.log(task_id)
    assert await gw.resolution(task_id) == "completed/completed", log
    owners = [line for line in log.splitlines() if line.startswith("task_")]
    assert len(owners) == 5 and len(set(owners)) == 1, log
