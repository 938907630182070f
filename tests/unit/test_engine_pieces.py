import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from generic_worker.engine.environment import base_environment, command_environment
from generic_worker.engine.taskdirs import new_task_dir, old_task_dirs, remove_task_dirs
from generic_worker.engine.tasklog import TaskLog
from generic_worker.features.command_executor import shell_escape, shell_join
from generic_worker.timefmt import go_duration, parse_tc, to_tc


@pytest.mark.parametrize(
    "token,escaped",
    [
        ("echo", "echo"),
        ("hello world!", "'hello world!'"),
        ("it's", "it\\'s"),
        ("a'b c", "'a'\\''b c'"),
        ("'x y", "\\''x y'"),
        ("x y'", "'x y'\\'"),
        ("/usr/bin/env", "/usr/bin/env"),
        ("a.txt", "'a.txt'"),
        ("", "''"),
        ("$HOME", "'$HOME'"),
    ],
)
def test_shell_escape_like_the_seed(token: str, escaped: str):
    assert shell_escape(token) == escaped


def test_shell_join():
    assert shell_join(["/bin/sh", "-c", "exit 1"]) == "/bin/sh -c 'exit 1'"


def test_timestamps():
    when = datetime(2017, 1, 25, 23, 31, 13, 787654, tzinfo=UTC)
    assert to_tc(when) == "2017-01-25T23:31:13.787Z"
    assert parse_tc("2017-01-25T23:31:13.787Z") == datetime(2017, 1, 25, 23, 31, 13, 787000, tzinfo=UTC)


@pytest.mark.parametrize(
    "seconds,text",
    [(0, "0s"), (1.5, "1.5s"), (0.0012, "1.2ms"), (75.25, "1m15.25s"), (3600, "1h0m0s"), (0.000002, "2µs")],
)
def test_go_durations(seconds: float, text: str):
    assert go_duration(seconds) == text
    assert go_duration(timedelta(seconds=seconds)) == text


def test_environment_strips_worker_credentials_and_forces_values():
    worker_env = {
        "PATH": "/bin",
        "TASKCLUSTER_ACCESS_TOKEN": "s",
        "TASKCLUSTER_CLIENT_ID": "c",
        "TASKCLUSTER_CERTIFICATE": "x",
        "KEEP": "1",
    }
    base = base_environment(worker_env, multiuser=False)
    assert base == {"PATH": "/bin", "KEEP": "1"}
    env = command_environment(base, {"KEEP": "2", "TASK_ID": "mine"}, {"TASK_ID": "forced"})
    assert env == {"PATH": "/bin", "KEEP": "2", "TASK_ID": "forced"}
    clean = base_environment(worker_env, multiuser=True, user="task_1", home="/home/task_1")
    assert clean == {
        "HOME": "/home/task_1",
        "USER": "task_1",
        "LOGNAME": "task_1",
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
    }


def test_task_dirs(tmp_path: Path):
    first = new_task_dir(tmp_path)
    second = new_task_dir(tmp_path)
    assert first != second
    assert first.name.startswith("task_") and (first / "generic-worker").is_dir()
    (tmp_path / "task_file").write_text("not a dir")
    (tmp_path / "other").mkdir()
    (tmp_path / "task_link").symlink_to(tmp_path / "other")
    assert old_task_dirs(tmp_path, keep=[second]) == [first]
    assert remove_task_dirs([first]) == []
    assert not first.exists() and second.exists()
    assert (tmp_path / "task_file").exists() and (tmp_path / "other").exists()
    assert old_task_dirs(tmp_path / "missing") == []


async def test_task_log_prefixes_and_followers(tmp_path: Path):
    log = TaskLog(tmp_path / "live_backing.log")
    log.info("one\ntwo")
    log.warn("careful")
    log.error("broken")
    log.write(b"raw output\n")
    text = (tmp_path / "live_backing.log").read_text()
    lines = text.splitlines()
    assert lines[0].startswith("[taskcluster 20") and lines[0].endswith("Z] one")
    assert lines[1].endswith("Z] two")
    assert lines[2].startswith("[taskcluster:warn 20") and lines[2].endswith("Z] careful")
    assert lines[3] == "[taskcluster:error] broken"
    assert lines[4] == "raw output"
    assert log.size == len(text.encode())
    assert await log.wait_beyond(0)
    log.close()
    assert not await log.wait_beyond(log.size)
    log.write(b"dropped after close")
    assert (tmp_path / "live_backing.log").read_text() == text


async def test_task_log_wakes_followers_for_writes_from_threads(tmp_path: Path):
    import asyncio

    log = TaskLog(tmp_path / "l.log")
    waiter = asyncio.create_task(log.wait_beyond(0))
    await asyncio.sleep(0)
    assert not waiter.done()
    await asyncio.to_thread(log.write, b"from a pump thread\n")
    assert await asyncio.wait_for(waiter, 5)
    log.close()
    assert os.path.getsize(tmp_path / "l.log") == 19


def test_the_task_log_sink_lets_the_pumps_splice():
    """A task's command output reaches its log through splice(2), not through Python."""
    from generic_worker.engine.taskrun import _LogSink
    from generic_worker.process import SplicingSink

    assert isinstance(object.__new__(_LogSink), SplicingSink)
