"""Task directories: `<tasksDir>/task_<n>` with a `generic-worker/` folder inside for the log.

`n` is the Unix time in milliseconds when the directory was made (bumped on a clash), so
names sort by age and stay short enough to double as OS user names in the multiuser engine.
When one cannot be set up (a full disk), `probe_task_dir` tells the worker when it can again.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Collection
from pathlib import Path

from generic_worker.engine import preallocate
from generic_worker.engine.tasklog import LINE_ROOM

MIB = 1024 * 1024


def new_task_dir(tasks_dir: Path, name_taken: Callable[[str], bool] | None = None) -> Path:
    """Create a fresh, empty task directory (and its `generic-worker/` folder); OSError if impossible.

    `name_taken` (multiuser: "an OS user has this name") skips names in use elsewhere, so the
    directory's name is free for the task user too.
    """
    tasks_dir.mkdir(parents=True, exist_ok=True)
    n = int(time.time() * 1000)
    while True:
        path = tasks_dir / f"task_{n}"
        if name_taken is not None and name_taken(path.name):
            n += 1
            continue
        try:
            path.mkdir(mode=0o755)
        except FileExistsError:
            n += 1
            continue
        try:
            (path / "generic-worker").mkdir(mode=0o755)
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return path


def probe_task_dir(tasks_dir: Path, required_megabytes: int) -> str | None:
    """Why a task could not be set up in `tasks_dir` now, or None when it could (blocking).

    Needs `requiredDiskSpaceMegabytes` free there, and a throwaway task directory whose log file
    can hold its reserve (which also needs a free inode); the probe is deleted again.
    """
    try:
        st = os.statvfs(tasks_dir)
    except OSError as e:
        return f"cannot read the free space of {tasks_dir}: {e}"
    free = st.f_bavail * st.f_frsize
    if free < required_megabytes * MIB:
        return (
            f"only {free // MIB} MiB free in {tasks_dir}, requiredDiskSpaceMegabytes is "
            f"{required_megabytes} MiB"
        )
    path: Path | None = None
    try:
        path = new_task_dir(tasks_dir)
        fd = os.open(path / "generic-worker" / "probe", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            preallocate.reserve(fd, 0, LINE_ROOM)
        finally:
            os.close(fd)
    except OSError as e:
        return f"cannot set up a task directory in {tasks_dir}: {e}"
    finally:
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)
    return None


def old_task_dirs(tasks_dir: Path, keep: Collection[Path] = ()) -> list[Path]:
    """Directories named `task_*` in tasksDir, except `keep` (files of that name are left alone)."""
    if not tasks_dir.is_dir():
        return []
    kept = {p.resolve() for p in keep}
    return sorted(
        p
        for p in tasks_dir.iterdir()
        if p.name.startswith("task_") and p.is_dir() and not p.is_symlink() and p.resolve() not in kept
    )


def remove_task_dirs(paths: Collection[Path]) -> list[str]:
    """Delete the given task directories (blocking: call via asyncio.to_thread); return problems."""
    problems = []
    for path in paths:
        try:
            shutil.rmtree(path)
        except OSError as e:
            problems.append(f"could not delete {path}: {e}")
    return problems
