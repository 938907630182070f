"""`logFormat`: the real worker's stderr as text or JSON lines, never with a secret in it."""

import asyncio
import json
import sys
from pathlib import Path

import pytest

from generic_worker.exitcodes import ExitCode

from .harness import GW

SCRIPT = Path(sys.executable).parent / "generic-worker"


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_worker_log_format_and_no_secrets(gw: GW, fmt: str):
    task_id = await gw.submit({"command": [["echo", "hi"]], "maxRunTime": 30})
    config = gw.write_config(gw.tmp / "gw.json", logFormat=fmt, livelogSecret="livelog-s3cret")
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT), "run", "--config", str(config), cwd=gw.tmp, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    text = stderr.decode()
    assert proc.returncode == ExitCode.TASKS_COMPLETE, text[-2000:]
    for secret in (gw.raw_config["accessToken"], "livelog-s3cret"):
        assert secret not in text
    if fmt == "text":
        assert f"Claimed task {task_id} run 0" in text
        assert not text.lstrip().startswith("{")
        return
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    resolved = [line for line in lines if line["message"].startswith(f"task {task_id} run 0 resolved as")]
    assert len(resolved) == 1 and resolved[0]["taskId"] == task_id and resolved[0]["runId"] == 0
    assert any(
        line["message"].startswith("Config: ") and "'*************'" in line["message"] for line in lines
    )


async def test_a_bad_log_format_is_a_config_error(gw: GW):
    config = gw.write_config(gw.tmp / "gw.json", logFormat="xml")
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT), "run", "--config", str(config), cwd=gw.tmp, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == ExitCode.INVALID_CONFIG
    assert '"logFormat": must be "text" or "json", got \'xml\'' in stderr.decode()
