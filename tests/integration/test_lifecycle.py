"""Claims, cancellation, killing, signals and crashes (modern-gw.md §5.13; TARGET §4, §11)."""

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import psutil

from generic_worker.engine.feature import FeatureBase, WorkerExit
from generic_worker.engine.worker import Worker
from generic_worker.exitcodes import ExitCode
from generic_worker.features import build_features
from tclocal.testing import running_tclocal

from .harness import GW, run_state, wait_for

SCRIPT = Path(sys.executable).parent / "generic-worker"


async def cancel(gw: GW, task_id: str) -> None:
    async with aiohttp.ClientSession() as session:
        await gw.queue(session).cancelTask(task_id)


async def test_cancellation_is_noticed_within_the_poll_interval(gw: GW):
    task_id = await gw.submit(
        {"command": [["/bin/sh", "-c", "touch started; exec sleep 60"]], "maxRunTime": 120}
    )
    worker = asyncio.create_task(gw.run(taskStatusPollIntervalSecs=1))
    await wait_for(lambda: any((d / "started").exists() for d in gw.task_dirs()))
    await cancel(gw, task_id)
    cancelled_at = time.monotonic()
    assert await asyncio.wait_for(worker, 30) == ExitCode.TASKS_COMPLETE
    assert time.monotonic() - cancelled_at < 10
    assert await gw.resolution(task_id) == "exception/canceled"
    log = await gw.log(task_id)  # the log is still uploaded after the cancellation
    assert "the queue resolved this run elsewhere (exception/canceled)" in log


async def test_resolving_an_already_resolved_task_does_not_crash(gw: GW):
    # The worker does not notice the cancel (long poll interval): its reportCompleted gets a 409.
    task_id = await gw.submit({"command": [["/bin/sh", "-c", "touch started; sleep 1"]], "maxRunTime": 60})
    worker = asyncio.create_task(gw.run(taskStatusPollIntervalSecs=300))
    await wait_for(lambda: any((d / "started").exists() for d in gw.task_dirs()))
    await cancel(gw, task_id)
    assert await asyncio.wait_for(worker, 30) == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "exception/canceled"


async def test_no_process_survives_the_task(gw: GW):
    script = (
        "setsid sleep 1000 & echo $! > setsid.pid; "
        "( ( sleep 1000 & echo $! > daemon.pid ) & ); "
        "sh -c 'trap \"\" TERM; sleep 1000' & echo $! > ignorer.pid; "
        "sleep 0.2; echo started"
    )
    task_id = await gw.submit({"command": [["/bin/sh", "-c", script]], "maxRunTime": 60})
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "completed/completed"
    task_dir = next(gw.task_dirs())
    pids = [int((task_dir / name).read_text()) for name in ("setsid.pid", "daemon.pid", "ignorer.pid")]
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid
    zombies = [c for c in psutil.Process().children() if c.status() == psutil.STATUS_ZOMBIE]
    assert zombies == []


def start_worker(config: Path, cwd: Path) -> "asyncio.Future[asyncio.subprocess.Process]":
    return asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            str(SCRIPT),
            "run",
            "--config",
            str(config),
            cwd=cwd,
            start_new_session=True,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
    )


async def test_sigterm_aborts_the_task_as_worker_shutdown(gw: GW):
    task_id = await gw.submit(
        {"command": [["/bin/sh", "-c", "echo $$ > sleeper.pid; exec sleep 600"]], "maxRunTime": 900}
    )
    config = gw.write_config(gw.tmp / "gw.json")
    proc = await start_worker(config, gw.tmp)
    pid_file = await wait_for(
        lambda: next((d / "sleeper.pid" for d in gw.task_dirs() if (d / "sleeper.pid").exists()), None)
    )
    sleeper = int(await wait_for(lambda: pid_file.read_text().strip()))
    proc.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == ExitCode.WORKER_SHUTDOWN, stderr.decode()
    assert await gw.resolution(task_id) == "exception/worker-shutdown"
    assert "Worker is shutting down" in await gw.log(task_id)
    assert not psutil.pid_exists(sleeper)
    # worker-shutdown is retried by the queue while retries remain
    assert await run_state(gw, task_id, 1) == "pending"


async def test_sigint_finishes_the_task_then_exits_71(gw: GW):
    task_id = await gw.submit(
        {"command": [["/bin/sh", "-c", "touch started; sleep 1; echo finished"]], "maxRunTime": 60}
    )
    config = gw.write_config(gw.tmp / "gw.json", numberOfTasksToRun=0)
    proc = await start_worker(config, gw.tmp)
    await wait_for(lambda: any((d / "started").exists() for d in gw.task_dirs()))
    proc.send_signal(signal.SIGINT)
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == ExitCode.WORKER_STOPPED, stderr.decode()
    assert await gw.resolution(task_id) == "completed/completed"
    assert "finished" in await gw.log(task_id)


async def test_sigint_while_idle_exits_promptly(gw: GW):
    config = gw.write_config(gw.tmp / "gw.json", numberOfTasksToRun=0)
    proc = await start_worker(config, gw.tmp)
    assert proc.stderr is not None
    await wait_for(lambda: (gw.tmp / "tasks").exists() or True)
    line = b""
    while b"All features initialised" not in line:
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == ExitCode.WORKER_STOPPED
    assert time.monotonic() - started < 5


async def test_worker_killed_then_restarted_picks_up_the_retried_run(tmp_path: Path):
    with running_tclocal(tmp_path / "tc", claim_timeout=3, claim_work_wait=1.0, reaper_interval=0.2) as tc:
        gw = GW(tc, tmp_path)
        task_id = await gw.submit(
            {
                "command": [["/bin/sh", "-c", 'touch started; test "$RUN_ID" != 0 || exec sleep 600']],
                "maxRunTime": 900,
            },
            retries=2,
        )
        config = gw.write_config(tmp_path / "gw.json", cleanUpTaskDirs=True)
        proc = await start_worker(config, tmp_path)
        await wait_for(lambda: any((d / "started").exists() for d in gw.task_dirs()))
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        assert await wait_for(lambda: run_state(gw, task_id, 1), timeout=30) == "pending"
        assert await gw.resolution(task_id, 0) == "exception/claim-expired"
        old_dirs = list(gw.task_dirs())
        assert await gw.run(cleanUpTaskDirs=True) == ExitCode.TASKS_COMPLETE
        assert await gw.resolution(task_id, 1) == "completed/completed"
        assert not any(d.exists() for d in old_dirs)


async def test_reclaims_keep_a_long_task_alive(tmp_path: Path):
    with running_tclocal(tmp_path / "tc", claim_timeout=2, claim_work_wait=1.0, reaper_interval=0.2) as tc:
        gw = GW(tc, tmp_path)
        task_id = await gw.submit({"command": [["sleep", "5"]], "maxRunTime": 60})
        assert await gw.run() == ExitCode.TASKS_COMPLETE
        assert await gw.resolution(task_id) == "completed/completed"
        assert len((await gw.status(task_id))["runs"]) == 1


class _CrashOnSecondClaim(FeatureBase):
    """A feature of this test only: its worker-loop hook fails the second time, while a task runs."""

    name = "Crash On Second Claim"

    def __init__(self, tasks_dir: Path) -> None:
        self.calls = 0
        self.tasks_dir = tasks_dir

    def is_requested(self, task: object) -> bool:
        return False

    async def before_claim(self) -> bool:
        self.calls += 1
        if self.calls == 2:
            await wait_for(lambda: any(self.tasks_dir.glob("task_*/started")))
            raise RuntimeError("boom: simulated worker bug")
        return True


async def test_worker_crash_resolves_running_task_as_internal_error(gw: GW):
    task_id = await gw.submit(
        {"command": [["/bin/sh", "-c", "echo working; touch started; sleep 600"]], "maxRunTime": 900}
    )
    config = gw.config(capacity=2, numberOfTasksToRun=0)
    worker = Worker(
        config, [*build_features(config), _CrashOnSecondClaim(gw.tmp / "tasks")], state_dir=gw.tmp
    )
    assert await asyncio.wait_for(worker.run(), 60) == ExitCode.INTERNAL_ERROR
    assert await gw.resolution(task_id) == "exception/internal-error"
    log = await gw.log(task_id)
    assert "worker crashed: RuntimeError: boom: simulated worker bug" in log
    assert "working" in log


class _ClaimGate(FeatureBase):
    """A feature of this test only: refuses the first claims, or stops the worker."""

    name = "Claim Gate"

    def __init__(self, refusals: int, stop: bool = False) -> None:
        self.refusals = refusals
        self.stop = stop
        self.calls = 0

    def is_requested(self, task: object) -> bool:
        return False

    async def before_claim(self) -> bool:
        self.calls += 1
        if self.stop:
            raise WorkerExit("cannot go on", ExitCode.INTERNAL_ERROR)
        return self.calls > self.refusals


async def test_a_feature_can_hold_back_claims(gw: GW):
    task_id = await gw.submit({"command": [["true"]], "maxRunTime": 30})
    config = gw.config()
    gate = _ClaimGate(refusals=3)
    worker = Worker(config, [*build_features(config), gate], state_dir=gw.tmp, claim_retry_delay=0.05)
    assert await worker.run() == ExitCode.TASKS_COMPLETE
    assert gate.calls == 4
    assert await gw.resolution(task_id) == "completed/completed"


async def test_a_feature_can_stop_the_worker(gw: GW):
    task_id = await gw.submit({"command": [["true"]], "maxRunTime": 30})
    config = gw.config()
    worker = Worker(config, [*build_features(config), _ClaimGate(0, stop=True)], state_dir=gw.tmp)
    assert await worker.run() == ExitCode.INTERNAL_ERROR
    assert await run_state(gw, task_id) == "pending"  # never claimed


def fake_machine_command(tmp: Path) -> tuple[Path, Path]:
    """`shutdown` is an outside system we must not run: a stand-in records its arguments."""
    record = tmp / "shutdown-called.txt"
    script = tmp / "fake-shutdown"
    script.write_text(f'#!/bin/sh\necho "$@" > {record}\n')
    script.chmod(0o755)
    return script, record


async def test_idle_timeout_runs_the_shutdown_command_when_configured(gw: GW):
    script, record = fake_machine_command(gw.tmp)
    code = await gw.run(
        idleTimeoutSecs=1,
        numberOfTasksToRun=0,
        shutdownMachineOnIdle=True,
        shutdownCommand=f"{script} now please",
    )
    assert code == ExitCode.IDLE_TIMEOUT
    assert record.read_text() == "now please\n"


async def test_idle_timeout_without_shutdown_flag_leaves_the_machine_alone(gw: GW):
    script, record = fake_machine_command(gw.tmp)
    assert (
        await gw.run(idleTimeoutSecs=1, numberOfTasksToRun=0, shutdownCommand=str(script))
        == ExitCode.IDLE_TIMEOUT
    )
    assert not record.exists()


async def test_internal_error_runs_the_shutdown_command_when_configured(gw: GW):
    script, record = fake_machine_command(gw.tmp)
    config = gw.config(shutdownMachineOnInternalError=True, shutdownCommand=str(script))
    worker = Worker(config, [*build_features(config), _ClaimGate(0, stop=True)], state_dir=gw.tmp)
    assert await worker.run() == ExitCode.INTERNAL_ERROR
    assert record.exists()


async def test_worker_log_is_useful_and_never_shows_secrets(gw: GW):
    task_id = await gw.submit(
        {
            "command": [["echo", "hi"]],
            "maxRunTime": 30,
            "artifacts": [{"type": "file", "path": "missing.txt", "optional": True}],
        }
    )
    # (a certificate is masked the same way, see tests/unit/test_config.py; a fake one would not authenticate)
    config = gw.write_config(gw.tmp / "gw.json", livelogSecret="livelog-s3cret")
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "run",
        "--config",
        str(config),
        cwd=gw.tmp,
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    text = stdout.decode() + stderr.decode()
    for secret in (gw.raw_config["accessToken"], "livelog-s3cret"):
        assert secret not in text
    assert "accessToken='*************'" in text
    for line in (
        f"Claimed task {task_id} run 0",
        f"task {task_id}: starting feature Command Executor",
        f'task {task_id}: executing command 0: ["echo", "hi"]',
        f"task {task_id}: artifact public/logs/live_backing.log uploaded",
        f"task {task_id} run 0 resolved as",
    ):
        assert line in text, line


class _BrokenInit(FeatureBase):
    """A feature of this test only: its initialisation fails unexpectedly."""

    name = "Broken Init"

    async def initialise(self, worker: object) -> None:
        raise RuntimeError("cannot initialise")


async def test_a_crash_while_initialising_exits_69(gw: GW):
    config = gw.config()
    worker = Worker(config, [*build_features(config), _BrokenInit()], state_dir=gw.tmp)
    assert await worker.run() == ExitCode.INTERNAL_ERROR
