"""A task user's life: made for one task run, removed with everything it left.

Creation: user `task_<n>` (the task directory's name), home = the task directory, which it then
owns with mode 0700; the worker's own `generic-worker/` folder inside stays root's, mode 0700,
so the task can neither read nor change its log. Removal: kill every process of the uid, delete
the user (and so its group memberships), and delete what it owns in the machine's shared
temporary directories. The task directory itself goes with the worker's usual task-directory
clean-up (`cleanUpTaskDirs`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

from generic_worker.multiuser.accounts import AccountError, create_user, delete_user
from generic_worker.multiuser.idmap import pin, unbind_all_under
from generic_worker.process import TaskUser, kill_leftovers

log = logging.getLogger(__name__)

SHARED_TEMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")


async def make_task_user(task_dir: Path) -> TaskUser:
    """Create the user of `task_dir` and give it the directory (raises `AccountError`)."""
    user = await create_user(task_dir.name, task_dir)
    await asyncio.to_thread(_hand_over_task_dir, task_dir, user)
    return user


def _hand_over_task_dir(task_dir: Path, user: TaskUser) -> None:
    gw_dir = task_dir / "generic-worker"
    os.chown(gw_dir, 0, 0)
    os.chmod(gw_dir, 0o700)
    # Ordering: pinned before the task user owns the task directory. The task could otherwise
    # rename the worker's folder away and put its own `live_backing.log` where the worker
    # reads the log back for the upload and for chain of trust.
    try:
        pin(gw_dir)
    except OSError as e:
        log.warning("could not pin %s (a task could rename it): %s", gw_dir, e)
    os.chown(task_dir, user.uid, user.gid)
    os.chmod(task_dir, 0o700)


async def unpin_task_dir(task_dir: Path) -> None:
    """Undo the pin of the worker's folder (at task end, before the directory is deleted)."""
    for point in await asyncio.to_thread(unbind_all_under, task_dir):
        log.debug("unmounted %s", point)


async def remove_task_user(user: TaskUser) -> list[str]:
    """Kill the user's processes, delete the user, and its files in shared temp dirs; return problems."""
    problems: list[str] = []
    killed = await kill_leftovers(None, {user.uid})
    if killed:
        log.info("killed %d leftover process(es) of %s: %s", len(killed), user.name, [k.pid for k in killed])
    try:
        await delete_user(user.name)
    except AccountError as e:  # report and go on: the rest of the clean-up still matters
        problems.append(str(e))
    problems.extend(await asyncio.to_thread(remove_owned_temp_files, user.uid))
    return problems


def remove_owned_temp_files(uid: int) -> list[str]:
    """Delete the entries that `uid` owns at the top of the shared temporary directories."""
    problems = []
    for top in SHARED_TEMP_DIRS:
        try:
            entries = list(os.scandir(top))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue
            except OSError as e:
                problems.append(f"could not delete {entry.path}: {e}")
    return problems
