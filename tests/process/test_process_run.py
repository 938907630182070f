"""Running one command: exit statuses, signals, start failures, environment, cwd, user."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from pathlib import Path

import pytest

from generic_worker.process import Command, Result, TaskProcesses

from .proc_helpers import NOBODY, PY, Collector, as_root, env_for, py, sh


@pytest.mark.parametrize("code", [0, 1, 123])
async def test_exit_codes(task: TaskProcesses, tmp_path: Path, code: int) -> None:
    result = await task.run(sh(f"exit {code}", tmp_path, "T1"))
    assert result.exit_code == code
    assert result.signal is None and result.start_error is None and not result.aborted
    assert result.started
    assert result.succeeded is (code == 0)
    assert result.describe() == f"exit status {code}"


async def test_signal_death(task: TaskProcesses, tmp_path: Path) -> None:
    result = await task.run(sh("kill -KILL $$", tmp_path, "T1"))
    assert result.exit_code is None
    assert result.signal == signal.SIGKILL
    assert result.started and not result.succeeded and not result.aborted
    assert result.describe() == "signal: killed"


async def test_bare_name_not_on_path(task: TaskProcesses, tmp_path: Path) -> None:
    result = await task.run(Command(("no-such-program-gw",), tmp_path, env_for("T1")))
    assert not result.started and not result.succeeded
    assert result.start_error == (
        '"no-such-program-gw": executable not found in PATH (/usr/local/bin:/usr/bin:/bin)'
    )
    assert result.describe() == result.start_error


async def test_missing_path(task: TaskProcesses, tmp_path: Path) -> None:
    result = await task.run(Command(("./missing.sh",), tmp_path, env_for("T1")))
    assert result.start_error == '"./missing.sh": no such file'


async def test_not_executable(task: TaskProcesses, tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    result = await task.run(Command((str(script),), tmp_path, env_for("T1")))
    assert result.start_error is not None
    assert "permission denied" in result.start_error and str(script) in result.start_error


async def test_exec_format_error(task: TaskProcesses, tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"\x00\x01\x02 not a program\n")
    blob.chmod(0o755)
    result = await task.run(Command(("./blob",), tmp_path, env_for("T1")))
    assert result.start_error is not None and "exec format error" in result.start_error


async def test_missing_interpreter(task: TaskProcesses, tmp_path: Path) -> None:
    script = tmp_path / "tool"
    script.write_text("#!/no/such/interpreter\n")
    script.chmod(0o755)
    env = env_for("T1", PATH=str(tmp_path))
    result = await task.run(Command(("tool",), tmp_path, env))
    assert result.start_error is not None
    assert "interpreter" in result.start_error and str(script) in result.start_error


async def test_bad_cwd(task: TaskProcesses, tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    result = await task.run(Command(("true",), missing, env_for("T1")))
    assert result.start_error == f"working directory {missing} does not exist"
    afile = tmp_path / "afile"
    afile.write_text("")
    result = await task.run(Command(("true",), afile, env_for("T1")))
    assert result.start_error == f"working directory {afile} is not a directory"


async def test_empty_argv_and_nul_byte(task: TaskProcesses, tmp_path: Path) -> None:
    assert (await task.run(Command((), tmp_path, env_for("T1")))).start_error == ("the command is empty")
    result = await task.run(Command(("echo", "a\0b"), tmp_path, env_for("T1")))
    assert result.start_error is not None and "null byte" in result.start_error


async def test_start_failure_leaks_no_fds(task: TaskProcesses, tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        assert (await task.run(Command(("nope-gw",), tmp_path, env_for("T1")))).start_error
    assert len(os.listdir("/proc/self/fd")) == before


async def test_path_lookup_uses_command_env(task: TaskProcesses, sink: Collector, tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "hello-gw"
    tool.write_text('#!/bin/sh\necho "hello from $0"\n')
    tool.chmod(0o755)
    env = env_for("T1", PATH=f"{bindir}:/usr/bin:/bin")
    result = await task.run(Command(("hello-gw",), tmp_path, env))
    assert result.succeeded
    assert sink.data == f"hello from {tool}\n".encode()


async def test_env_cwd_and_fds_exactly_as_given(task: TaskProcesses, sink: Collector, tmp_path: Path) -> None:
    code = (
        "import json, os, sys\n"
        "fds = sorted(int(f) for f in os.listdir('/proc/self/fd'))\n"
        "links = {f: os.readlink(f'/proc/self/fd/{f}') for f in (0, 1, 2)}\n"
        "json.dump({'env': dict(os.environ), 'cwd': os.getcwd(), 'fds': fds, 'links': links,\n"
        "           'sid': os.getsid(0), 'pid': os.getpid()}, sys.stdout)\n"
    )
    env = {"TASK_ID": "T1", "ONLY": "this", "PYTHONCOERCECLOCALE": "0", "LC_ALL": "C.UTF-8"}
    result = await task.run(Command((PY, "-c", code), tmp_path, env))
    assert result.succeeded, sink.data
    seen = json.loads(sink.data)
    assert seen["env"] == env
    assert seen["cwd"] == str(tmp_path)  # pytest resolves tmp_path already
    assert seen["fds"] == [0, 1, 2, 3]  # 3 is the directory listdir was reading
    assert seen["links"]["0"] == "/dev/null"
    assert seen["links"]["1"] == seen["links"]["2"] and seen["links"]["1"].startswith("pipe:")
    assert seen["sid"] == seen["pid"]  # its own session, hence its own process group


async def test_stdin_bytes(task: TaskProcesses, sink: Collector, tmp_path: Path) -> None:
    result = await task.run(sh("tr a-z A-Z", tmp_path, "T1"), stdin=b"shout\n" * 50_000)
    assert result.succeeded
    assert sink.data == b"SHOUT\n" * 50_000


async def test_rusage_is_plausible(task: TaskProcesses, tmp_path: Path) -> None:
    code = "b = b'x' * (96 << 20)\nn = 0\nfor i in range(3_000_000): n += i\n"
    result = await task.run(py(code, tmp_path, "T1"))
    assert result.succeeded
    assert 96 << 20 <= result.max_rss_bytes < 1 << 30
    assert result.user_time > 0.02
    assert result.system_time >= 0.0
    # One thread: CPU time cannot exceed the wall time (plus a clock tick of rounding).
    assert result.user_time + result.system_time <= result.wall_time + 0.02


def test_describe_texts() -> None:
    assert Result(exit_code=None, signal=15, start_error=None, aborted=True).describe() == (
        "signal: terminated"
    )
    assert Result(exit_code=None, signal=99, start_error=None, aborted=False).describe() == (
        "signal: signal 99"  # Go's wording for a signal it has no name for
    )
    aborted = Result.not_started(None, aborted=True)
    assert not aborted.started and aborted.describe() == "aborted before it started"


@as_root
async def test_runs_as_task_user(task: TaskProcesses, sink: Collector) -> None:
    with_groups = dataclasses.replace(NOBODY, groups=(65534, 100))
    result = await task.run(
        Command(("sh", "-c", "id -u; id -g; id -G"), Path("/"), env_for("T1"), with_groups)
    )
    assert result.succeeded, sink.data
    assert sink.data.split(b"\n")[:3] == [b"65534", b"65534", b"65534 100"]
