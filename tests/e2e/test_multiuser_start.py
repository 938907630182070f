"""`generic-worker run` refuses to start the multiuser engine unsafely (exit 73, one clear line)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from .cli import SCRIPT, gw

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the multiuser engine needs root")

CONFIG = {
    "rootURL": "http://127.0.0.1:1",
    "clientId": "c",
    "accessToken": "t",
    "workerId": "w",
    "workerType": "wt",
    "publicIP": "127.0.0.1",
    "subdomain": "",
    "runTasksAsCurrentUser": False,
}


def write(path: Path, mode: int, **extra: object) -> Path:
    path.write_text(json.dumps({**CONFIG, **extra}))
    path.chmod(mode)
    return path


@pytest.mark.root
@needs_root
@pytest.mark.parametrize("which", ["config", "signingKeyLocation", "ed25519SigningKeyLocation"])
def test_secrets_readable_by_others_are_refused(tmp_path: Path, which: str) -> None:
    key = tmp_path / "key"
    key.write_text("k")
    key.chmod(0o644 if which != "config" else 0o600)
    keys = {"ed25519SigningKeyLocation": str(key)} if which == "config" else {which: str(key)}
    config = write(tmp_path / "c.json", 0o644 if which == "config" else 0o600, **keys)
    r = gw("run", "--config", str(config), cwd=tmp_path)
    assert r.returncode == 73, r.stderr
    wrong = config if which == "config" else key
    lines = [line for line in r.stderr.splitlines() if str(wrong) in line]
    assert len(lines) == 1 and "mode 0644" in lines[0] and "readable only by root" in lines[0], r.stderr
    assert stat_mode(wrong) == 0o644  # never chmod'ed


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.root
@needs_root
def test_multiuser_engine_as_non_root_is_refused(tmp_path: Path) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    here = Path(tempfile.mkdtemp(prefix="gw-mu-"))  # pytest's tmp_path is root-only
    here.chmod(0o755)
    config = write(here / "c.json", 0o644, enableChainOfTrust=False)
    r = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            str(SCRIPT),
            "run",
            "--config",
            str(config),
        ],
        cwd=here,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    shutil.rmtree(here)
    assert r.returncode == 73, r.stderr
    assert "must run as root" in r.stderr


@pytest.mark.root
@needs_root
def test_tasks_dir_task_users_cannot_reach_is_refused(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    config = write(tmp_path / "c.json", 0o600, enableChainOfTrust=False, tasksDir=str(tmp_path / "tasks"))
    r = gw("run", "--config", str(config), cwd=tmp_path)
    assert r.returncode == 73, r.stderr
    assert f"directory {tmp_path} has mode 0700, so task users cannot reach" in r.stderr
