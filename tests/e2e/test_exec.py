"""`generic-worker exec` through the installed console script: exit codes, artifacts, live log, caches, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .cli import SCRIPT, gw

pytestmark = pytest.mark.slow


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """An environment whose ~/.cache is the test's own (exec keeps caches there by default)."""
    env = dict(os.environ)
    env["HOME"] = str(tmp_path / "home")
    env.pop("XDG_CACHE_HOME", None)
    return env


def write_task(path: Path, payload: dict[str, Any], **definition: Any) -> Path:
    path.write_text(yaml.safe_dump({"payload": payload, **definition}))
    return path


def test_completed_task_streams_its_log_copies_artifacts_and_exits_0(tmp_path, home):
    task = write_task(
        tmp_path / "task.yml",
        {
            "maxRunTime": 30,
            "command": [
                ["/bin/sh", "-c", "mkdir -p out/sub && echo report > out/sub/r.txt && echo hello-exec"]
            ],
            "artifacts": [{"type": "directory", "path": "out", "name": "public/out"}],
        },
        metadata={"name": "exec test"},
    )
    result = gw("exec", str(task), "--artifacts", str(tmp_path / "arts"), cwd=tmp_path, env=home)
    assert result.returncode == 0, result.stderr
    assert "hello-exec" in result.stdout
    assert "=== Task Finished ===" in result.stdout
    assert (tmp_path / "arts" / "public" / "out" / "sub" / "r.txt").read_text() == "report\n"
    backing = (tmp_path / "arts" / "public" / "logs" / "live_backing.log").read_text()
    assert "hello-exec" in backing
    assert ": completed (completed)" in result.stderr
    assert "public/out/sub/r.txt" in result.stderr and "7 B" in result.stderr


def test_failed_task_exits_1_and_a_bare_payload_on_stdin_is_enough(tmp_path, home):
    payload = json.dumps({"maxRunTime": 30, "command": [["/bin/sh", "-c", "echo about-to-fail; exit 3"]]})
    result = subprocess.run(
        [str(SCRIPT), "exec", "-"],
        input=payload,
        cwd=tmp_path,
        env=home,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "about-to-fail" in result.stdout
    assert ": failed (failed)" in result.stderr
    assert (tmp_path / "artifacts" / "public" / "logs" / "live_backing.log").exists()


def test_malformed_payload_prints_the_validation_lines_and_exits_2(tmp_path, home):
    task = write_task(tmp_path / "bad.yml", {"command": "not a list"})
    result = gw("exec", str(task), cwd=tmp_path, env=home)
    assert result.returncode == 2, result.stderr
    assert "TASK FAIL since the task payload is invalid" in result.stdout
    assert "maxRunTime is required" in result.stdout
    assert "exception (malformed-payload)" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read task file"),
        ("payload: [unclosed", "neither JSON nor YAML"),
        ("- a list", "must hold an object"),
        (
            "dependencies: [fGpaB2uNQ2iVXK2cBhCz5g]\npayload: {maxRunTime: 5, command: [[true]]}",
            "dependencies",
        ),
    ],
)
def test_unusable_task_file_exits_64(tmp_path, home, content, message):
    task = tmp_path / "task.yml"
    if content is not None:
        task.write_text(content)
    result = gw("exec", str(task), cwd=tmp_path, env=home)
    assert result.returncode == 64
    assert message in result.stderr


def test_invalid_config_exits_73_listing_every_problem(tmp_path, home):
    task = write_task(tmp_path / "t.yml", {"maxRunTime": 5, "command": [["true"]]})
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"noSuchKey": 1, "cleanUpTaskDirs": "yes"}))
    result = gw("exec", str(task), "--config", str(config), cwd=tmp_path, env=home)
    assert result.returncode == 73
    assert '"noSuchKey": unknown config key' in result.stderr
    assert '"cleanUpTaskDirs"' in result.stderr


def test_caches_persist_in_the_configured_folder_across_two_runs(tmp_path, home):
    caches = tmp_path / "worker"
    config = tmp_path / "c.json"
    config.write_text(
        json.dumps({"cachesDir": str(caches / "caches"), "downloadsDir": str(caches / "downloads")})
    )
    task = write_task(
        tmp_path / "t.yml",
        {
            "maxRunTime": 30,
            "mounts": [{"directory": "cache", "cacheName": "exec-counter"}],
            "command": [
                [
                    "/bin/sh",
                    "-c",
                    'n=$(cat cache/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > cache/n; echo "runs=$n"',
                ]
            ],
        },
        scopes=["generic-worker:cache:exec-counter"],
    )
    first = gw("exec", str(task), "--config", str(config), cwd=tmp_path, env=home)
    second = gw("exec", str(task), "--config", str(config), cwd=tmp_path, env=home)
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert "runs=1" in first.stdout
    assert "runs=2" in second.stdout


def _start(task: Path, tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(SCRIPT), "exec", str(task), "--keep"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_until(proc: subprocess.Popen[str], marker: str) -> list[str]:
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # the worker's live log: blocks until the next line is written
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError(f"{marker!r} never appeared: {''.join(seen)}")


def test_log_streams_while_the_task_runs(tmp_path, home):
    gate = tmp_path / "gate"
    task = write_task(
        tmp_path / "t.yml",
        {
            "maxRunTime": 60,
            "command": [
                [
                    "/bin/sh",
                    "-c",
                    f"echo before-gate; while [ ! -e {gate} ]; do sleep 0.05; done; echo after-gate",
                ]
            ],
        },
    )
    proc = _start(task, tmp_path, home)
    try:
        _read_until(proc, "before-gate")
        assert proc.poll() is None  # the task is still waiting for the gate: the line came live
        gate.touch()
        rest, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "after-gate" in rest
    assert "tc-local serve --data-dir" in err  # --keep says how to serve the kept state


def test_ctrl_c_aborts_as_worker_shutdown_and_still_copies_the_log(tmp_path, home):
    task = write_task(
        tmp_path / "t.yml",
        {"maxRunTime": 120, "command": [["/bin/sh", "-c", "echo waiting-forever; sleep 120"]]},
    )
    proc = _start(task, tmp_path, home)
    try:
        _read_until(proc, "waiting-forever")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 2, err
    assert "exception (worker-shutdown)" in err
    log = (tmp_path / "artifacts" / "public" / "logs" / "live_backing.log").read_text()
    assert "waiting-forever" in log
