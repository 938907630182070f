"""The `tc-local` client commands against a running tc-local (in-process `main`)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import requests
import slugid
import taskcluster

from tclocal.cli import main
from tclocal.exitcodes import ExitCode
from tclocal.server import write_server_info
from tclocal.testing import RunningTCLocal, unique_worker_type

pytestmark = pytest.mark.tclocal_only("the `tc-local` command line")


@pytest.fixture
def env(local: RunningTCLocal, monkeypatch: pytest.MonkeyPatch) -> RunningTCLocal:
    monkeypatch.setenv("TASKCLUSTER_ROOT_URL", local.root_url)
    monkeypatch.setenv("TASKCLUSTER_CLIENT_ID", local.root_client_id)
    monkeypatch.setenv("TASKCLUSTER_ACCESS_TOKEN", local.root_access_token)
    return local


def run_task_as_worker(local: RunningTCLocal, worker_type: str, log: bytes) -> None:
    """Play the worker with the sync client: claim, upload a gzipped log, report completed."""
    queue = taskcluster.Queue(local.options())
    claim = queue.claimWork(f"tc-local/{worker_type}", {"workerGroup": "g", "workerId": "w", "tasks": 1})
    task_id, expires = claim["tasks"][0]["status"]["taskId"], claim["tasks"][0]["task"]["expires"]
    as_task = taskcluster.Queue(local.options(claim["tasks"][0]["credentials"]))
    name = "public/logs/live_backing.log"
    put = as_task.createArtifact(
        task_id, 0, name, {"storageType": "s3", "contentType": "text/plain", "expires": expires}
    )
    headers = {"Content-Type": "text/plain", "Content-Encoding": "gzip"}
    assert (
        requests.put(put["putUrl"], data=gzip.compress(log), headers=headers, timeout=30).status_code == 200
    )
    error = {
        "storageType": "error",
        "reason": "file-missing-on-worker",
        "message": "gone",
        "expires": expires,
    }
    as_task.createArtifact(task_id, 0, "public/missing.txt", error)
    as_task.reportCompleted(task_id, 0)


def test_submit_status_artifacts_fetch_log(
    env: RunningTCLocal, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    worker_type = unique_worker_type()
    task_file = tmp_path / "task.yml"
    task_file.write_text("payload:\n  command: [[echo, hi]]\n  maxRunTime: 30\n")
    assert main(["submit", str(task_file), "--worker-type", worker_type]) == ExitCode.OK
    task_id = capsys.readouterr().out.strip()
    assert slugid.decode(task_id)
    assert main(["status", task_id]) == ExitCode.OK
    assert "pending" in capsys.readouterr().out
    run_task_as_worker(env, worker_type, b"hello from the task\n")
    assert main(["status", task_id, "--json"]) == ExitCode.OK
    assert '"state": "completed"' in capsys.readouterr().out
    assert main(["artifacts", task_id]) == ExitCode.OK
    assert "public/logs/live_backing.log\ts3\ttext/plain" in capsys.readouterr().out
    assert main(["log", task_id]) == ExitCode.OK
    assert capsys.readouterr().out == "hello from the task\n"
    out = tmp_path / "log.txt"
    assert main(["fetch", task_id, "public/logs/live_backing.log", "--run", "0", "--output", str(out)]) == 0
    assert out.read_bytes() == b"hello from the task\n"
    assert main(["fetch", task_id, "public/missing.txt"]) == ExitCode.API_ERROR
    assert "gone" in capsys.readouterr().err


def test_errors_map_to_exit_codes(
    env: RunningTCLocal, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", slugid.nice()]) == ExitCode.API_ERROR
    assert "does not correspond to a task that exists" in capsys.readouterr().err
    assert main(["bogus"]) == ExitCode.USAGE
    assert main(["submit", str(tmp_path / "missing.yml")]) == ExitCode.ERROR
    (tmp_path / "list.yml").write_text("- not a mapping\n")
    assert main(["submit", str(tmp_path / "list.yml")]) == ExitCode.ERROR


def test_client_commands_find_the_service_from_its_data_dir(
    local: RunningTCLocal, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TASKCLUSTER_ROOT_URL", raising=False)
    assert main(["--data-dir", str(tmp_path), "status", slugid.nice()]) == ExitCode.ERROR
    write_server_info(local.data_dir, local.root_url)
    task_file = tmp_path / "t.json"
    task_file.write_text('{"payload": {}}')
    assert main(["submit", str(task_file), "--data-dir", str(local.data_dir)]) == ExitCode.OK
    task_id = capsys.readouterr().out.strip()
    assert taskcluster.Queue(local.options()).status(task_id)["status"]["state"] == "pending"
