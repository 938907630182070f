"""Creating and deleting the per-task OS users with the distribution's own tools.

`useradd`/`userdel`/`gpasswd` (shadow-utils) take the password and group file locks, so several
workers on one machine (or one worker with `capacity` > 1) never corrupt those files; a busy
lock is retried. A task user has no password (locked), a private group of its own name, and its
task directory as home. Deleting the user also drops it from every group it was added to.
"""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
from collections.abc import Iterable
from pathlib import Path

from generic_worker.process import TaskUser, run_capture

USER_PREFIX = "task_"
_TOOL_TIMEOUT = 60.0
_LOCK_RETRIES = 20
# shadow-utils exit codes: 1 = can't update password file, 10 = can't update group file (both
# mean "lock busy" in practice); useradd 9 = name in use; userdel 6 = no such user.
_BUSY = frozenset({1, 10})
NAME_IN_USE = 9
_NO_SUCH_USER = 6
_SHELL = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
_TOOL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class AccountError(Exception):
    """A user or group operation failed; the message says which and why."""


class NameInUse(AccountError):
    """`useradd` refused the name: a user of that name exists already."""


async def _tool(*argv: str) -> tuple[int | None, str]:
    env = {"PATH": _TOOL_PATH, "LANG": "C"}
    for attempt in range(_LOCK_RETRIES):
        result = await run_capture(argv, env=env, cwd=Path("/"), timeout=_TOOL_TIMEOUT)
        if result.result.start_error is not None:
            raise AccountError(f"{argv[0]} could not start: {result.result.start_error}")
        if result.exit_code not in _BUSY or attempt == _LOCK_RETRIES - 1:
            return result.exit_code, result.text.strip()
        await asyncio.sleep(0.05 * (attempt + 1))  # another useradd holds the lock
    raise AssertionError("unreachable")  # pragma: no cover


def user_exists(name: str) -> bool:
    """Whether an OS user of that name exists."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def task_user(name: str) -> TaskUser:
    """The `TaskUser` for an existing user: its ids, its home and its current supplementary groups."""
    entry = pwd.getpwnam(name)
    groups = tuple(sorted(set(os.getgrouplist(name, entry.pw_gid))))
    return TaskUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid, groups=groups, home=Path(entry.pw_dir))


async def create_user(name: str, home: Path) -> TaskUser:
    """Create user `name` (locked password, own group, `home` as home, not created by useradd).

    Raises `NameInUse` when the name is taken, `AccountError` for anything else.
    """
    code, text = await _tool(
        "useradd",
        "--home-dir",
        str(home),
        "--no-create-home",
        "--user-group",
        "--shell",
        _SHELL,
        "--comment",
        "generic-worker task user",
        name,
    )
    if code == NAME_IN_USE:
        raise NameInUse(f"user {name} exists already")
    if code != 0:
        raise AccountError(f"could not create user {name}: useradd: {text or f'exit code {code}'}")
    return task_user(name)


async def delete_user(name: str) -> None:
    """Delete user `name` and its private group (a missing user is fine). Kill its processes first."""
    code, text = await _tool("userdel", name)
    if code not in (0, _NO_SUCH_USER):
        raise AccountError(f"could not delete user {name}: userdel: {text or f'exit code {code}'}")


def missing_groups(groups: Iterable[str]) -> list[str]:
    """The names among `groups` that are not groups on this machine."""
    missing = []
    for group in groups:
        try:
            grp.getgrnam(group)
        except KeyError:
            missing.append(group)
    return missing


async def add_to_groups(name: str, groups: Iterable[str]) -> None:
    """Add user `name` to each of `groups` (they must exist)."""
    for group in groups:
        code, text = await _tool("gpasswd", "--add", name, group)
        if code != 0:
            why = text or f"exit code {code}"
            raise AccountError(f"could not add {name} to group {group}: gpasswd: {why}")


def leftover_users(tasks_dir: Path) -> list[pwd.struct_passwd]:
    """`task_*` users whose home is a task directory of `tasks_dir` (left by an earlier run)."""
    root = os.path.realpath(tasks_dir)
    found = []
    for entry in pwd.getpwall():
        if not entry.pw_name.startswith(USER_PREFIX):
            continue
        if os.path.dirname(os.path.normpath(entry.pw_dir)) == root:
            found.append(entry)
    return found


async def create_system_user(name: str) -> None:
    """Create system account `name` (no home, no login) unless it exists; `AccountError` if impossible."""
    if user_exists(name):
        return
    code, text = await _tool(
        "useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name
    )
    if code not in (0, NAME_IN_USE):
        raise AccountError(f"could not create system user {name}: useradd: {text or f'exit code {code}'}")
