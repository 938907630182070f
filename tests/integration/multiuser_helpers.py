"""Shared set-up for the multiuser engine's integration tests (root only)."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from .harness import GW

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the multiuser engine needs root")


def reachable_dir() -> Path:
    """A fresh directory that task users can traverse to (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="gw-mu-"))
    path.chmod(0o711)
    return path


@pytest.fixture
def mu_root() -> Iterator[Path]:
    """The multiuser tests' tasks/caches root, removed afterwards."""
    path = reachable_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def multiuser(gw: GW, root: Path, **overrides: Any) -> None:
    """Switch `gw` to the multiuser engine with task directories under `root`."""
    gw.raw_config.update(
        {
            "runTasksAsCurrentUser": False,
            "tasksDir": str(root / "tasks"),
            "enableChainOfTrust": False,
            **overrides,
        }
    )


def task_users_of(tasks_dir: Path) -> list[str]:
    """Names of OS users whose home is a task directory under `tasks_dir`."""
    root = os.path.realpath(tasks_dir)
    return [e.pw_name for e in pwd.getpwall() if os.path.dirname(e.pw_dir) == root]


def processes_of(uids: set[int]) -> list[int]:
    """Live processes running as any of `uids`."""
    found = []
    for proc in psutil.process_iter(["uids", "status"]):
        info = proc.info
        if info["uids"] is not None and info["uids"].real in uids and info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc.pid)
    return found
