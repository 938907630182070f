"""`run --configure-for-aws` against a fake EC2 metadata service and provisioner, and a real tc-local:
start-up, deploymentId checks (exit 70) and spot terminations (exit 72). No test runs `shutdown`.
"""

import asyncio
import base64
import json
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from generic_worker.aws import aws_config_layer
from generic_worker.engine.worker import Worker
from generic_worker.exitcodes import ExitCode
from generic_worker.features import build_features
from generic_worker.features.spot_termination import SPOT_TERMINATION

from .aws_fakes import INSTANCE_ID, REGION, TOKEN, FakeEC2, recording_shutdown, zip_of
from .harness import GW, PROVISIONER

SCRIPT = Path(sys.executable).parent / "generic-worker"


@pytest.fixture
async def ec2(gw: GW) -> AsyncIterator[FakeEC2]:
    scopes = [
        f"queue:claim-work:{PROVISIONER}/{gw.worker_type}",
        f"queue:worker-id:{REGION}/{INSTANCE_ID}",
        "queue:status:*",
        "queue:get-task:*",
    ]
    client_id = f"aws/{gw.worker_type}"
    token = gw.tc.create_client(client_id, scopes)
    fake = FakeEC2(gw.worker_type, {"clientId": client_id, "accessToken": token})
    await fake.start()
    yield fake
    await fake.stop()


def local_keys(gw: GW, ec2: FakeEC2, shutdown: Path) -> dict[str, object]:
    """What stays in the file on an AWS worker: local paths, test ports, the fake, no real shutdown."""
    keep = ("tasksDir", "cachesDir", "downloadsDir", "livelogGETPort", "taskclusterProxyPort", "subdomain")
    keys: dict[str, object] = {k: gw.raw_config[k] for k in keep}
    keys.update(requiredDiskSpaceMegabytes=16, shutdownCommand=str(shutdown), rebootCommand=str(shutdown))
    keys["metadataBaseURL"] = ec2.url
    return keys


async def test_configure_for_aws_runs_a_task_with_what_aws_provides(gw: GW, ec2: FakeEC2):
    shutdown, record = recording_shutdown(gw.tmp)
    ec2.gw_config = {"rootURL": gw.tc.root_url, "deploymentId": "deployment-1", "numberOfTasksToRun": 1}
    ec2.files = [
        {
            "format": "file",
            "encoding": "base64",
            "path": "secrets/key.txt",
            "content": base64.b64encode(b"k3y").decode(),
        },
        {"format": "zip", "encoding": "base64", "path": "unzipped", "content": zip_of({"a/b.txt": b"bee"})},
    ]
    # No credentials, worker identity or root URL in the file: AWS provides them.
    config = gw.tmp / "gw.json"
    config.write_text(json.dumps(local_keys(gw, ec2, shutdown)))
    task_id = await gw.submit({"command": [["echo", "hello from aws"]], "maxRunTime": 30})
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT), "run", "--configure-for-aws", "--config", str(config), cwd=gw.tmp,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "HOME": str(gw.tmp)},
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == ExitCode.TASKS_COMPLETE, stderr.decode()[-3000:]
    assert await gw.resolution(task_id) == "completed/completed"
    run = (await gw.status(task_id))["runs"][0]
    assert (run["workerGroup"], run["workerId"]) == (REGION, INSTANCE_ID)
    log = await gw.log(task_id)
    assert "hello from aws" in log and '"instance-id": "i-0123456789abcdef0"' in log
    assert ec2.calls.index(f"GET secret/{TOKEN}") < ec2.calls.index(f"DELETE secret/{TOKEN}")
    assert (gw.tmp / "secrets" / "key.txt").read_bytes() == b"k3y"
    assert (gw.tmp / "unzipped" / "a" / "b.txt").read_bytes() == b"bee"
    # The deployment was checked before the first claim, with the worker's own credentials.
    assert f"GET worker-type/{gw.worker_type}" in ec2.calls
    assert f'id="aws/{gw.worker_type}"' in ec2.worker_type_auth[0]
    saved = gw.tmp / "aws-config.json"
    assert saved.stat().st_mode & 0o777 == 0o600
    assert json.loads(saved.read_text())["idleTimeoutSecs"] == 3600
    assert ec2.credentials["accessToken"] not in stderr.decode()
    assert not record.exists()


async def test_the_layer_is_merged_under_the_file_and_saved_for_restarts(gw: GW, ec2: FakeEC2):
    ec2.gw_config = {"idleTimeoutSecs": 0, "workerTypeMetadata": {"team": "ci"}}
    layer, problems = await aws_config_layer(ec2.url, gw.tmp)
    assert problems == []
    assert layer["idleTimeoutSecs"] == 3600  # still 0 after the secret's config
    assert layer["shutdownMachineOnIdle"] is True and layer["shutdownMachineOnInternalError"] is True
    assert layer["workerTypeMetadata"]["aws"]["availability-zone"] == f"{REGION}b"
    assert layer["workerTypeMetadata"]["team"] == "ci"
    assert (layer["workerId"], layer["workerGroup"], layer["privateIP"]) == (INSTANCE_ID, REGION, "10.0.0.7")
    # A restarted worker finds the secret gone (it is deleted after the first read): it uses the saved layer.
    again, problems = await aws_config_layer(ec2.url, gw.tmp)
    assert again == layer
    assert len(problems) == 1 and "using the values saved" in problems[0]
    assert ec2.calls.count(f"DELETE secret/{TOKEN}") == 2  # a failed read deletes it too


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"format": "tar", "encoding": "base64"}, "Unknown file format tar in worker type secret"),
        (
            {"format": "file", "encoding": "hex"},
            "Unsupported encoding hex for file secret in worker type definition",
        ),
        (
            {"format": "zip", "encoding": "utf8"},
            "Unsupported encoding utf8 for zip secret in worker type definition",
        ),
    ],
)
async def test_unsupported_secret_files_fail_with_the_seeds_text(gw: GW, ec2: FakeEC2, entry, message):
    ec2.files = [{"path": "x", "content": "", **entry}]
    layer, problems = await aws_config_layer(ec2.url, gw.tmp)
    assert layer == {} and problems == [f"--configure-for-aws failed: {message}"]
    assert ec2.secret_taken  # deleted all the same


async def test_a_new_deployment_id_stops_the_worker_with_70_and_runs_the_shutdown_command(
    gw: GW, ec2: FakeEC2, caplog: pytest.LogCaptureFixture
):
    shutdown, record = recording_shutdown(gw.tmp)
    ec2.deployment_id = "deployment-2"
    config = gw.config(
        provisionerBaseURL=ec2.provisioner_url, deploymentId="deployment-1", shutdownCommand=f"{shutdown} now"
    )
    worker = Worker(config, build_features(config, configure_for_aws=True), state_dir=gw.tmp)
    with caplog.at_level(logging.INFO):
        assert await worker.run() == ExitCode.NONCURRENT_DEPLOYMENT_ID
    assert (
        'New deploymentId found! "deployment-1" => "deployment-2" - therefore shutting down!' in caplog.text
    )
    assert record.read_text() == "now\n"


async def test_a_provisioner_failure_counts_as_unchanged(gw: GW, ec2: FakeEC2):
    shutdown, record = recording_shutdown(gw.tmp)
    ec2.worker_type_status = 500
    config = gw.config(
        provisionerBaseURL=ec2.provisioner_url,
        deploymentId="deployment-1",
        shutdownCommand=str(shutdown),
        numberOfTasksToRun=0,
        idleTimeoutSecs=1,
    )
    worker = Worker(config, build_features(config, configure_for_aws=True), state_dir=gw.tmp)
    assert await worker.run() == ExitCode.IDLE_TIMEOUT
    assert f"GET worker-type/{gw.worker_type}" in ec2.calls
    assert not record.exists()


async def test_a_spot_termination_aborts_the_task_uploads_its_log_and_exits_72(gw: GW, ec2: FakeEC2):
    shutdown, record = recording_shutdown(gw.tmp)
    ec2.spot_status = 200
    task_id = await gw.submit({"command": [["sleep", "60"]], "maxRunTime": 120})
    config = gw.config(
        metadataBaseURL=ec2.url,
        shutdownCommand=str(shutdown),
        shutdownMachineOnIdle=True,
        shutdownMachineOnInternalError=True,
        numberOfTasksToRun=5,
    )
    worker = Worker(config, build_features(config, configure_for_aws=True), state_dir=gw.tmp)
    assert await asyncio.wait_for(worker.run(), 60) == ExitCode.WORKER_SHUTDOWN
    assert await gw.resolution(task_id) == "exception/worker-shutdown"
    assert SPOT_TERMINATION in await gw.log(task_id)
    assert "GET meta-data/spot/termination-time" in ec2.calls
    assert not record.exists()  # AWS takes the machine away; the worker does not shut it down


async def test_other_spot_answers_only_warn(gw: GW, ec2: FakeEC2, caplog: pytest.LogCaptureFixture):
    ec2.spot_status = 500
    task_id = await gw.submit({"command": [["true"]], "maxRunTime": 30})
    config = gw.config(metadataBaseURL=ec2.url)
    worker = Worker(config, build_features(config, configure_for_aws=True), state_dir=gw.tmp)
    assert await worker.run() == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "completed/completed"
    assert "Unexpected HTTP 500 from the spot termination notice" in caplog.text


async def test_no_spot_polling_without_configure_for_aws(gw: GW, ec2: FakeEC2):
    ec2.spot_status = 200
    task_id = await gw.submit({"command": [["true"]], "maxRunTime": 30})
    assert await gw.run(metadataBaseURL=ec2.url) == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "completed/completed"
    assert ec2.calls == []
