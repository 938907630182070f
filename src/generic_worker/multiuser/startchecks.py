"""What the multiuser engine checks before it runs anything (exit 73 on any problem).

It needs root (to create users and switch to them), and the files that hold the worker's secrets
(the config file with the worker's credentials, the chain-of-trust signing keys) must be readable
only by root: a task user could otherwise read them. The worker never changes the operator's
files (the seed chmod'ed them silently); it says which file is wrong and stops.
"""

from __future__ import annotations

import os
import platform
import stat
from pathlib import Path

from generic_worker.config import Config

_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def _file_problem(what: str, path: Path) -> str | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None  # a missing key is chain of trust's to report (exit 73: it cannot be loaded)
    except OSError as e:
        return f"{what} {path} cannot be checked: {e.strerror or e}"
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid != 0:
        return (
            f"{what} {path} is owned by uid {info.st_uid} (mode {mode:04o}); the multiuser engine needs it "
            "owned by root and readable only by root (e.g. chown root and chmod 0600)"
        )
    if mode & _OTHERS:
        return (
            f"{what} {path} has mode {mode:04o}, so users other than root can access it; the multiuser "
            "engine needs it readable only by root (e.g. chmod 0600)"
        )
    return None


def multiuser_problems(config: Config, config_file: Path | None) -> list[str]:
    """One line per reason the multiuser engine cannot start with `config` (empty: fine)."""
    if not config.multiuser:
        return []
    if platform.system() != "Linux":  # the worker's start boundary: the one place it is decided
        return [f"the multiuser engine (runTasksAsCurrentUser: false) needs Linux, not {platform.system()}"]
    if os.geteuid() != 0:
        return [
            "the multiuser engine (runTasksAsCurrentUser: false) must run as root, to create task "
            f"users; this worker runs as uid {os.geteuid()}"
        ]
    files: list[tuple[str, Path]] = []
    if config_file is not None:
        files.append(("config file", config_file))
    if config.signing_key_location:
        files.append(("signing key (signingKeyLocation)", Path(config.signing_key_location)))
    if config.ed25519_signing_key_location:
        key = Path(config.ed25519_signing_key_location)
        files.append(("signing key (ed25519SigningKeyLocation)", key))
    problems = []
    for what, path in files:
        problem = _file_problem(what, path)
        if problem is not None:
            problems.append(problem)
    unreachable = _unreachable_tasks_dir(Path(config.tasks_dir))
    if unreachable is not None:
        problems.append(unreachable)
    return problems


def _unreachable_tasks_dir(tasks_dir: Path) -> str | None:
    """Why task users could not reach their directories under `tasks_dir` (None: they can)."""
    path = Path(os.path.abspath(tasks_dir))
    for directory in (path, *path.parents):
        try:
            mode = stat.S_IMODE(os.stat(directory).st_mode)
        except FileNotFoundError:
            continue  # made by the worker (0755) when the first task starts
        except OSError as e:
            return f"tasksDir {tasks_dir}: cannot check {directory}: {e.strerror or e}"
        if not mode & stat.S_IXOTH:
            return (
                f"tasksDir {tasks_dir}: directory {directory} has mode {mode:04o}, so task users cannot "
                "reach their task directories; it needs search permission for others (e.g. chmod 0711)"
            )
    return None
