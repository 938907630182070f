"""A 1 GiB log and a 1 GiB artifact stream through the worker with bounded memory."""

import asyncio
import os
import resource
import subprocess
import sys
from pathlib import Path

from generic_worker.exitcodes import ExitCode

from .harness import GW

SCRIPT = Path(sys.executable).parent / "generic-worker"
GIB = 1 << 30


async def test_one_gib_log_and_artifact_with_bounded_worker_memory(gw: GW):
    payload = {
        "command": [
            ["head", "-c", str(GIB), "/dev/zero"],
            ["/bin/sh", "-c", f"head -c {GIB} /dev/zero > big.zst"],
        ],
        "maxRunTime": 600,
        "artifacts": [{"type": "file", "path": "big.zst", "name": "public/big.zst"}],
    }
    task_id = await gw.submit(payload)
    config = gw.write_config(gw.tmp / "gw.json", cleanUpTaskDirs=True)
    # The worker's state files belong in its own directory (cwd), not in the test runner's.
    proc = subprocess.Popen([str(SCRIPT), "run", "--config", str(config)], cwd=gw.tmp)
    # wait4 gives the worker's own peak RSS (its task processes are tiny `head`s).
    _, status, usage = await asyncio.to_thread(os.wait4, proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    assert os.waitstatus_to_exitcode(status) == ExitCode.TASKS_COMPLETE
    peak_mib = usage.ru_maxrss / 1024  # KiB on Linux
    assert peak_mib < 100, f"worker peak RSS {peak_mib:.0f} MiB"
    assert await gw.resolution(task_id) == "completed/completed"
    artifacts = await gw.artifacts(task_id)
    assert artifacts["public/big.zst"]["contentLength"] == GIB
    assert artifacts["public/logs/live_backing.log"]["contentLength"] > GIB  # the whole log went through
    blobs = sorted(
        (gw.tc.data_dir / "blobs").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0
    )
    assert blobs[-1].stat().st_size == GIB  # the identity upload arrived whole
    assert (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 < 1024
    )  # and the test itself did not buffer it
