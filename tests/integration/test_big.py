"""A 1 GiB log and a 1 GiB artifact stream through the worker with bounded memory."""

from generic_worker.exitcodes import ExitCode

from .harness import GW, MeasuredWorker

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
    # The worker's state files belong in its own directory (cwd), not in the test runner's.
    worker = await MeasuredWorker.start(gw.write_config(gw.tmp / "gw.json", cleanUpTaskDirs=True), gw.tmp)
    assert await worker.wait() == ExitCode.TASKS_COMPLETE
    assert 20 < worker.peak_mib < 100, f"worker peak RSS {worker.peak_mib:.0f} MiB"
    assert await gw.resolution(task_id) == "completed/completed"
    artifacts = await gw.artifacts(task_id)
    assert artifacts["public/big.zst"]["contentLength"] == GIB
    assert artifacts["public/logs/live_backing.log"]["contentLength"] > GIB  # the whole log went through
    blobs = sorted(
        (gw.tc.data_dir / "blobs").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0
    )
    assert blobs[-1].stat().st_size == GIB  # the identity upload arrived whole
