"""`install service`: the unit systemd would run, checked by `systemd-analyze verify`."""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from generic_worker.exitcodes import ExitCode
from generic_worker.service import SYSTEM_UNIT_DIR, SYSTEMD_RUNNING

from .cli import SCRIPT, gw

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze missing (make system-deps installs it)"
)


def fake_systemctl(tmp: Path) -> tuple[Path, Path]:
    """systemctl is an outside system we cannot run here: a stand-in records its calls."""
    bin_dir, calls = tmp / "bin", tmp / "systemctl-calls.txt"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    return bin_dir, calls


def unit_settings(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def exec_start_argv(text: str) -> list[str]:
    # systemd's quoting of these words is shell-like; `%%` is a literal `%`.
    return [w.replace("%%", "%") for w in shlex.split(unit_settings(text)["ExecStart"])]


def verify(unit: Path) -> None:
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False)
    assert r.returncode == 0 and unit.name not in r.stderr, r.stderr


def restarts(text: str, code: int) -> bool:
    """Whether `Restart=on-failure` restarts after exit `code`, by systemd's documented rules."""
    s = unit_settings(text)
    assert s["Restart"] == "on-failure"
    clean = {0, *map(int, s["SuccessExitStatus"].split())}
    prevented = set(map(int, s["RestartPreventExitStatus"].split()))
    return code not in clean and code not in prevented


@needs_systemd_analyze
def test_unit_dir_override_writes_a_valid_unit_and_calls_no_systemctl(tmp_path: Path):
    bin_dir, calls = fake_systemctl(tmp_path)
    units = tmp_path / "units"
    units.mkdir()
    config = tmp_path / "etc dir" / "gw%1.json"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{SCRIPT.parent}:/usr/bin:/bin",
        "GENERIC_WORKER_SYSTEMD_UNIT_DIR": str(units),
    }
    r = gw(
        "install", "service", "--service-name", "My CI Worker", "--config", str(config), env=env, cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    assert not calls.exists()
    unit = units / "my-ci-worker.service"
    text = unit.read_text()
    assert exec_start_argv(text) == [str(SCRIPT.resolve()), "run", "--config", str(config)]
    assert unit_settings(text)["WorkingDirectory"] == str(config.parent)
    verify(unit)


@needs_systemd_analyze
def test_without_the_script_on_path_execstart_runs_python_with_separate_arguments(tmp_path: Path):
    units = tmp_path / "units"
    units.mkdir()
    config = tmp_path / "missing.json"
    env = {**os.environ, "PATH": "/usr/bin:/bin", "GENERIC_WORKER_SYSTEMD_UNIT_DIR": str(units)}
    r = gw("install", "service", "--config", str(config), env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    unit = units / "generic-worker.service"
    argv = exec_start_argv(unit.read_text())
    assert argv == [sys.executable, "-m", "generic_worker", "run", "--config", str(config)]
    verify(unit)
    # The command really runs the worker: with no config file it exits 64.
    ran = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert ran.returncode == ExitCode.CANT_LOAD_CONFIG, ran.stderr


@needs_systemd_analyze
def test_verify_rejects_the_old_single_word_execstart(tmp_path: Path):
    # The old unit quoted "python -m generic_worker" as one word: make sure verify catches that.
    unit = tmp_path / "old.service"
    unit.write_text(f"[Service]\nExecStart='{sys.executable} -m generic_worker' run --config /x.json\n")
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False)
    assert r.returncode != 0 and "is not executable" in r.stderr


def test_restart_policy_restarts_only_crashes_and_internal_errors(tmp_path: Path):
    env = {**os.environ, "GENERIC_WORKER_SYSTEMD_UNIT_DIR": str(tmp_path)}
    assert gw("install", "service", env=env, cwd=tmp_path).returncode == 0
    text = (tmp_path / "generic-worker.service").read_text()
    # 2 is `exec`'s "task exception", which `run` never exits with.
    restarting = {code for code in ExitCode if restarts(text, code) and code is not ExitCode.TASK_EXCEPTION}
    assert restarting == {ExitCode.USAGE_ERROR, ExitCode.INTERNAL_ERROR}  # 1 = an uncaught Python exception
    assert not restarts(text, 0)


@pytest.mark.skipif(SYSTEMD_RUNNING.is_dir(), reason="systemd is PID 1 here: install would really enable")
def test_without_systemd_as_pid1_install_says_so_and_leaves_no_unit(tmp_path: Path):
    bin_dir, calls = fake_systemctl(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "GENERIC_WORKER_SYSTEMD_UNIT_DIR"}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    r = gw("install", "service", "--service-name", "gw-no-systemd-test", env=env, cwd=tmp_path)
    assert r.returncode == ExitCode.CANT_INSTALL_GENERIC_WORKER
    assert len(r.stderr.strip().splitlines()) == 1
    assert "systemd is not running as PID 1" in r.stderr
    assert not (SYSTEM_UNIT_DIR / "gw-no-systemd-test.service").exists()
    assert not calls.exists()


def test_unwritable_unit_dir_exits_65(tmp_path: Path):
    env = {**os.environ, "GENERIC_WORKER_SYSTEMD_UNIT_DIR": str(tmp_path / "no" / "dir")}
    r = gw("install", "service", env=env, cwd=tmp_path)
    assert r.returncode == ExitCode.CANT_INSTALL_GENERIC_WORKER
    assert "cannot write" in r.stderr


def test_the_documented_restart_table_is_what_the_unit_does(tmp_path: Path):
    env = {**os.environ, "GENERIC_WORKER_SYSTEMD_UNIT_DIR": str(tmp_path)}
    assert gw("install", "service", env=env, cwd=tmp_path).returncode == 0
    text = (tmp_path / "generic-worker.service").read_text()
    page = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    rows = {}
    for line in page.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) == 3 and cells[0].isdigit():
            rows[int(cells[0])] = "**restarted**" in cells[2]
    assert set(rows) == {0, 1, *range(64, 75)}
    assert rows == {code: restarts(text, code) for code in rows}
