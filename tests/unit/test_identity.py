"""Per-thread task-user credentials: the kernel checks file work as that user, then root is back."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from generic_worker.multiuser.identity import as_user
from generic_worker.process import TaskUser

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")]

NOBODY = TaskUser("nobody", 65534, 65534, (65534,), Path("/"))


async def test_file_work_runs_with_the_users_rights_and_only_in_its_thread(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("root only")
    secret.chmod(0o600)
    with pytest.raises(PermissionError):
        await as_user(NOBODY, secret.read_text)
    ids = await as_user(NOBODY, lambda: (os.geteuid(), os.getegid(), os.getgroups()))
    assert ids == (65534, 65534, [65534])
    # The process, other threads and the same identity thread afterwards are root again.
    assert os.geteuid() == 0
    assert await asyncio.to_thread(os.geteuid) == 0
    assert await as_user(None, secret.read_text) == "root only"
    results = await asyncio.gather(
        *(as_user(NOBODY, os.geteuid) for _ in range(8)), asyncio.to_thread(os.geteuid)
    )
    assert results == [65534] * 8 + [0]
