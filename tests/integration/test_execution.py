"""Core execution and resolution (modern-gw.md §5.1, §5.2, §5.9) against a real tc-local."""

import json
import os
import re
import sys
import time

import pytest

from generic_worker.exitcodes import ExitCode

from .harness import GW

HELLO_GOODBYE = [["echo", "hello world!"], ["echo", "goodbye world!"]]


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


async def test_failure_resolves_as_failure(gw: GW):
    task_id = await gw.submit({"command": [sh("exit 1")], "maxRunTime": 30})
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "failed/failed"
    log = await gw.log(task_id)
    assert "[taskcluster:error] exit status 1" in log
    assert "Exit Code: 1" in log


async def test_first_failure_stops_remaining_commands(gw: GW):
    task_id = await gw.submit({"command": [sh("exit 3"), ["echo", "never printed"]], "maxRunTime": 30})
    await gw.run()
    assert await gw.resolution(task_id) == "failed/failed"
    log = await gw.log(task_id)
    assert "never printed" not in log
    assert "Executing command 1" not in log


async def test_non_existent_command_fails_task(gw: GW):
    task_id = await gw.submit({"command": [["no-such-command-7f3a9c"]], "maxRunTime": 30})
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "failed/failed"
    log = await gw.log(task_id)
    assert "Command 0 could not start:" in log
    assert "no-such-command-7f3a9c" in log


async def test_non_executable_binary_fails_task(gw: GW):
    task_id = await gw.submit(
        {"command": [sh("printf 'not a program' > data.bin"), ["./data.bin"]], "maxRunTime": 30}
    )
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "failed/failed"
    assert "Command 1 could not start:" in await gw.log(task_id)


async def test_signal_death_fails_task(gw: GW):
    task_id = await gw.submit({"command": [sh("kill -9 $$")], "maxRunTime": 30})
    await gw.run()
    assert await gw.resolution(task_id) == "failed/failed"
    assert "signal: killed" in await gw.log(task_id)


async def test_commands_run_in_task_dir_without_shell(gw: GW):
    task_id = await gw.submit({"command": [sh("pwd > where.txt"), ["echo", "$HOME", "*"]], "maxRunTime": 30})
    await gw.run()
    task_dir = next(gw.task_dirs())
    assert (task_dir / "where.txt").read_text().strip() == str(task_dir)
    log = await gw.log(task_id)
    assert "$HOME *\n" in log  # no shell expansion
    assert "Executing command 1: echo '$HOME' '*'" in log


async def test_log_format(gw: GW):
    task_id = await gw.submit({"command": HELLO_GOODBYE, "maxRunTime": 30})
    await gw.run()
    lines = (await gw.log(task_id)).splitlines()
    ts = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"

    assert re.fullmatch(rf"\[taskcluster {ts}\] Worker Type \({gw.worker_type}\) settings:", lines[0])
    assert re.fullmatch(rf"\[taskcluster {ts}\]   \{{", lines[1])
    header = "\n".join(lines[:30])
    assert '"pretend": "metadata"' in header
    assert '"engine": "insecure"' in header
    assert f"] Task ID: {task_id}" in header
    assert any(re.fullmatch(rf"\[taskcluster {ts}\] === Task Starting ===", line) for line in lines)
    assert any(
        re.fullmatch(rf"\[taskcluster {ts}\] Executing command 0: echo 'hello world!'", line)
        for line in lines
    )
    assert "hello world!" in lines
    assert any(re.fullmatch(rf"\[taskcluster {ts}\] Exit Code: 0", line) for line in lines)
    assert any(re.fullmatch(rf"\[taskcluster {ts}\] === Task Finished ===", line) for line in lines)
    assert any(re.fullmatch(rf"\[taskcluster {ts}\] Task Duration: [0-9.]+(ms|s|µs)", line) for line in lines)


async def test_abort_after_max_run_time(gw: GW):
    payload = {
        "command": [
            [
                sys.executable,
                "-c",
                "import time\nfor i in range(60):\n print('tick', flush=True); time.sleep(0.2)",
            ],
            ["echo", "hello"],
        ],
        "maxRunTime": 2,
    }
    task_id = await gw.submit(payload)
    start = time.monotonic()
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    elapsed = time.monotonic() - start
    assert await gw.resolution(task_id) == "failed/failed"
    log = await gw.log(task_id)
    assert "Task aborted - max run time exceeded" in log
    assert "[taskcluster:error] Aborting task..." in log
    assert "\nhello\n" not in log
    assert "tick" in log
    assert 2 <= elapsed < 20


async def test_max_run_time_already_passed_starts_no_command(gw: GW):
    # Commands that have not started yet never start once the deadline has passed.
    payload = {"command": [sh("sleep 5"), ["echo", "too late"]], "maxRunTime": 1}
    task_id = await gw.submit(payload)
    await gw.run()
    log = await gw.log(task_id)
    assert "too late" not in log
    assert "Executing command 1" not in log


async def test_idle_without_crash(gw: GW):
    start = time.monotonic()
    assert await gw.run(idleTimeoutSecs=1, numberOfTasksToRun=0) == ExitCode.IDLE_TIMEOUT
    assert time.monotonic() - start >= 1


async def test_number_of_tasks_to_run(gw: GW):
    ids = [await gw.submit({"command": [["echo", str(i)]], "maxRunTime": 30}) for i in range(3)]
    assert await gw.run(numberOfTasksToRun=3) == ExitCode.TASKS_COMPLETE
    for task_id in ids:
        assert await gw.resolution(task_id) == "completed/completed"
    dirs = list(gw.task_dirs())
    assert len(dirs) == 3
    assert all((d / "generic-worker").is_dir() for d in dirs)


async def test_clean_up_task_dirs(gw: GW):
    stale = gw.tmp / "tasks" / "task_1"
    stale.mkdir(parents=True)
    (gw.tmp / "tasks" / "task_file").write_text("a file, not a task directory")
    (gw.tmp / "tasks" / "other").mkdir()
    await gw.submit({"command": [["true"]], "maxRunTime": 30})
    assert await gw.run(cleanUpTaskDirs=True) == ExitCode.TASKS_COMPLETE
    assert sorted(p.name for p in (gw.tmp / "tasks").iterdir()) == ["other", "task_file"]


@pytest.mark.parametrize(
    "exit_code,retry,resolution",
    [
        (123, [123], "exception/intermittent-task"),
        (456, [123], "failed/failed"),
        (0, [780], "completed/completed"),
        (10, [780, 10, 2], "exception/intermittent-task"),
        (0, [], "completed/completed"),
        (1, [], "failed/failed"),
    ],
)
async def test_intermittent_exit_codes(gw: GW, exit_code: int, retry: list[int], resolution: str):
    task_id = await gw.submit(
        {"command": [sh(f"exit {exit_code}")], "maxRunTime": 30, "onExitStatus": {"retry": retry}}
    )
    await gw.run()
    assert await gw.resolution(task_id) == resolution
    if resolution == "exception/intermittent-task":
        assert (
            f"Task appears to have failed intermittently - exit code {exit_code} found in task payload.onExitStatus list"
            in await gw.log(task_id)
        )


async def test_intermittent_negative_exit_code_is_malformed(gw: GW):
    task_id = await gw.submit({"command": [["true"]], "maxRunTime": 30, "onExitStatus": {"retry": [-1]}})
    await gw.run()
    assert await gw.resolution(task_id) == "exception/malformed-payload"
    assert "onExitStatus.retry.0: Must be greater than or equal to 1" in await gw.log(task_id)


async def test_intermittent_task_is_retried_by_the_queue(gw: GW):
    task_id = await gw.submit(
        {"command": [sh('test "$RUN_ID" != 0 || exit 3')], "maxRunTime": 30, "onExitStatus": {"retry": [3]}},
        retries=1,
    )
    assert await gw.run(numberOfTasksToRun=2) == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id, 0) == "exception/intermittent-task"
    assert await gw.resolution(task_id, 1) == "completed/completed"


async def test_environment(gw: GW, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TASKCLUSTER_ACCESS_TOKEN", "worker-secret-token")
    monkeypatch.setenv("TASKCLUSTER_CLIENT_ID", "worker-client")
    monkeypatch.setenv("GW_TEST_INHERITED", "inherited")
    strange = '()%!^"<>&|%3 r %!4 %~4RS %3 %PATH% %% "  tt'
    payload = {
        "command": [
            [sys.executable, "-c", "import json, os; json.dump(dict(os.environ), open('env.json', 'w'))"]
        ],
        "env": {"STRANGE_VAR": strange, "TASK_ID": "overridden?"},
        "maxRunTime": 30,
    }
    task_id = await gw.submit(payload)
    location = '{"cloud":"9","biscuits":"free"}'
    await gw.run(workerLocation=location, instanceType="verybiginstance")
    task_dir = next(gw.task_dirs())
    env = json.loads((task_dir / "env.json").read_text())
    assert env["STRANGE_VAR"] == strange
    assert env["TASK_ID"] == task_id
    assert env["RUN_ID"] == "0"
    assert env["TASK_WORKDIR"] == str(task_dir)
    assert env["TASK_GROUP_ID"] == (await gw.status(task_id))["taskGroupId"]
    assert env["TASKCLUSTER_ROOT_URL"] == gw.tc.root_url
    assert env["TASKCLUSTER_WORKER_LOCATION"] == location
    assert env["TASKCLUSTER_INSTANCE_TYPE"] == "verybiginstance"
    assert env["GW_TEST_INHERITED"] == "inherited"
    assert "TASKCLUSTER_ACCESS_TOKEN" not in env
    assert "TASKCLUSTER_CLIENT_ID" not in env
    assert "TASKCLUSTER_PROXY_URL" not in env
    assert await gw.resolution(task_id) == "completed/completed"


async def test_nothing_leaks_between_tasks(gw: GW):
    first = await gw.submit({"command": [["true"]], "env": {"ONLY_FIRST": "1"}, "maxRunTime": 30})
    second = await gw.submit(
        {"command": [sh('test -z "$ONLY_FIRST" && test "$TASK_ID" != "' + first + '"')], "maxRunTime": 30}
    )
    await gw.run(numberOfTasksToRun=2)
    assert await gw.resolution(second) == "completed/completed"
    assert "ONLY_FIRST" not in os.environ


async def test_resource_monitor_logs_memory_summary(gw: GW):
    task_id = await gw.submit({"command": [["echo", "hi"]], "maxRunTime": 30})
    await gw.run()
    log = await gw.log(task_id)
    for label in (
        "Average Available System Memory: ",
        "Average System Memory Used: ",
        "Peak System Memory Used: ",
        "Total System Memory: ",
    ):
        assert re.search(rf"\] {label}\d+\.\d\dMiB\n", log), label


async def test_resource_monitor_can_be_switched_off(gw: GW):
    task_id = await gw.submit(
        {"command": [["echo", "hi"]], "maxRunTime": 30, "features": {"resourceMonitor": False}}
    )
    await gw.run()
    assert "Peak System Memory Used" not in await gw.log(task_id)


async def test_oom_protection_aborts_a_task_under_memory_pressure(gw: GW):
    # Thresholds that any machine meets: every sample counts as pressure.
    pressure = {
        "maxMemoryUsagePercent": 0,
        "minAvailableMemoryBytes": 1 << 60,
        "allowedHighMemoryDurationSecs": 1,
    }
    task_id = await gw.submit({"command": [["sleep", "30"], ["echo", "never"]], "maxRunTime": 60})
    started = time.monotonic()
    await gw.run(**pressure)
    assert time.monotonic() - started < 20
    assert await gw.resolution(task_id) == "failed/failed"
    log = await gw.log(task_id)
    assert "has been too high for 1s" in log and "aborting the task" in log
    assert "never" not in log


async def test_disabled_oom_protection_only_warns(gw: GW):
    pressure = {
        "maxMemoryUsagePercent": 0,
        "minAvailableMemoryBytes": 1 << 60,
        "allowedHighMemoryDurationSecs": 0,
    }
    task_id = await gw.submit({"command": [["sleep", "1"]], "maxRunTime": 60})
    await gw.run(disableOOMProtection=True, **pressure)
    assert await gw.resolution(task_id) == "completed/completed"
    assert "not aborting since disableOOMProtection is set" in await gw.log(task_id)


async def test_capacity_runs_tasks_concurrently(gw: GW):
    from generic_worker.timefmt import parse_tc

    ids = [await gw.submit({"command": [["sleep", "1"]], "maxRunTime": 30}) for _ in range(2)]
    assert await gw.run(capacity=2, numberOfTasksToRun=2) == ExitCode.TASKS_COMPLETE
    runs = [(await gw.status(task_id))["runs"][0] for task_id in ids]
    assert all(run["state"] == "completed" for run in runs)
    first, second = sorted(runs, key=lambda run: run["started"])
    assert parse_tc(second["started"]) < parse_tc(first["resolved"])  # they overlapped
    assert len(list(gw.task_dirs())) == 2


async def test_commands_write_the_log_file_themselves_in_the_insecure_engine(gw: GW):
    """No pipe and no pump between a command and its log (docs/compression.md)."""
    task_id = await gw.submit({"command": [sh("readlink /proc/self/fd/1 /proc/self/fd/2")], "maxRunTime": 30})
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "completed/completed"
    log = await gw.log(task_id)
    assert log.count("generic-worker/live_backing.log\n") == 2, log
