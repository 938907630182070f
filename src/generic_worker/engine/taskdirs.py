"""Task directories: `<tasksDir>/task_<n>` with a `generic-worker/` folder inside for the log.

`n` is the Unix time in milliseconds when the directory was made (bumped on a clash), so
names sort by age and stay short enough to double as OS user names in the multiuser engine.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Collection
from pathlib import Path


def new_task_dir(tasks_dir: Path, name_taken: Callable[[str], bool] | None = None) -> Path:
    """Create a fresh, empty task directory (and its `generic-worker/` folder).

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
        (path / "generic-worker").mkdir(mode=0o755)
        return path


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
