"""Two concurrent multiuser tasks try to reach each other, root and the worker's secrets (root only).

Each task (capacity 2, so both run at once, each as its own task user) publishes where its
directory is and the pid of a process it keeps running, waits for the other, then tries: reading
the other's files, signalling the other's process, reading the config file and the signing keys,
signalling the worker and init. The probe exits 0 only when every attempt was refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from generic_worker.exitcodes import ExitCode

from .harness import GW
from .multiuser_helpers import mu_root, multiuser, needs_root, processes_of, task_users_of

__all__ = ["mu_root"]
pytestmark = [pytest.mark.root, needs_root]

PROBE = r"""
set -u
me=$1 other=$2 meet=$3
echo "private data of $me" > secret
sleep 600 &
echo $! > "$meet/$me.pid.tmp" && mv "$meet/$me.pid.tmp" "$meet/$me.pid"
echo "$PWD" > "$meet/$me.dir.tmp" && mv "$meet/$me.dir.tmp" "$meet/$me.dir"
i=0
while [ ! -f "$meet/$other.dir" ] || [ ! -f "$meet/$other.pid" ]; do
  i=$((i+1)); [ $i -gt 600 ] && { echo "other task never showed up"; exit 2; }
  sleep 0.1
done
odir=$(cat "$meet/$other.dir"); opid=$(cat "$meet/$other.pid")
failed=0
attempt() { if "$@" 2>/dev/null; then echo "ALLOWED: $*"; failed=1; else echo "refused: $*"; fi; }
attempt cat "$odir/secret"
attempt ls "$odir"
attempt kill -0 "$opid"
attempt kill -0 "$WORKER_PID"
attempt kill -0 1
for f in $SECRET_FILES; do attempt cat "$f"; done
echo "$me done" > "$meet/$me.done"
while [ ! -f "$meet/$other.done" ]; do sleep 0.1; done
exit $failed
"""


async def test_concurrent_tasks_cannot_reach_each_other_root_or_secrets(gw: GW, mu_root: Path) -> None:
    meet = mu_root / "meet"
    meet.mkdir(mode=0o1777)
    meet.chmod(0o1777)
    (meet / "probe.sh").write_text(PROBE)
    secrets = []
    for name in ("generic-worker.config", "ed25519.key", "openpgp.key"):
        path = mu_root / name
        path.write_text("secret\n")
        path.chmod(0o600)
        secrets.append(str(path))
    multiuser(gw, mu_root, capacity=2, numberOfTasksToRun=2)
    env = {"WORKER_PID": str(os.getpid()), "SECRET_FILES": " ".join(secrets)}
    ids = [
        await gw.submit(
            {"command": [["sh", str(meet / "probe.sh"), me, other, str(meet)]], "maxRunTime": 120, "env": env}
        )
        for me, other in (("a", "b"), ("b", "a"))
    ]
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    for task_id in ids:
        log = await gw.log(task_id)
        assert "ALLOWED" not in log, log
        assert log.count("refused: ") == 5 + len(secrets), log
        assert await gw.resolution(task_id) == "completed/completed", log
    dirs = {(meet / f"{me}.dir").read_text().strip() for me in "ab"}
    assert len(dirs) == 2  # two different task directories, so two different users
    owners = {Path(d).stat().st_uid for d in dirs}
    assert len(owners) == 2 and 0 not in owners
    # Both users, and every process they had (the `sleep 600`s), are gone.
    assert task_users_of(mu_root / "tasks") == []
    assert processes_of(owners) == []
