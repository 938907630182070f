"""Payload validation (modern-gw.md §5.3) through the real worker."""

from datetime import UTC, datetime, timedelta

import pytest

from generic_worker.timefmt import to_tc

from .harness import GW

HELLO = [["echo", "hello world!"]]


def at(minutes: float) -> str:
    return to_tc(datetime.now(UTC) + timedelta(minutes=minutes))


async def run_one(gw: GW, payload: object, **task: object) -> tuple[str, str]:
    task_id = await gw.submit(payload, **task)  # type: ignore[arg-type]
    await gw.run()
    return await gw.resolution(task_id), await gw.log(task_id)


@pytest.mark.parametrize(
    "payload,expected",
    [
        ({}, "(root): command is required"),
        (
            {"command": HELLO, "maxRunTime": 30, "env": {"FOO": 37}},
            "env.FOO: Invalid type. Expected: string, given: integer",
        ),
        (
            {"command": HELLO, "maxRunTime": 30, "extraField": 1},
            "(root): Additional property extraField is not allowed",
        ),
        ({"command": [], "maxRunTime": 30}, "command: Array must have at least 1 items"),
        (
            {
                "command": HELLO,
                "maxRunTime": 30,
                "mounts": [
                    {
                        "directory": "x",
                        "format": "zip",
                        "content": {"url": "https://example.com/a.zip", "sha356": "ab"},
                    }
                ],
            },
            "mounts.0.content: Additional property sha356 is not allowed",
        ),
        (
            {
                "command": HELLO,
                "maxRunTime": 30,
                "artifacts": [{"type": "file", "path": "a.txt", "contentEncoding": "jpg"}],
            },
            "artifacts.0.contentEncoding: artifacts.0.contentEncoding must be one of the following",
        ),
        (
            {
                "command": HELLO,
                "maxRunTime": 30,
                "artifacts": [{"type": "file", "path": "a.txt", "contentEncoding": ""}],
            },
            "artifacts.0.contentEncoding",
        ),
        (
            {
                "command": HELLO,
                "maxRunTime": 30,
                "artifacts": [{"type": "file", "path": "a"}, {"type": "file", "path": "a"}],
            },
            "artifacts: array items[0,1] must be unique",
        ),
        (
            {"command": HELLO, "maxRunTime": 30, "onExitStatus": {"purgeCaches": [-1]}},
            "onExitStatus.purgeCaches.0: Must be greater than or equal to 0",
        ),
    ],
)
async def test_invalid_payloads_are_malformed(gw: GW, payload: dict[str, object], expected: str):
    resolution, log = await run_one(gw, payload)
    assert resolution == "exception/malformed-payload"
    assert "[taskcluster:error] TASK FAIL since the task payload is invalid. See errors:" in log
    assert f"[taskcluster:error] - {expected}" in log
    assert "Task payload for this worker type must conform to the following jsonschema:" in log
    assert '"writableDirectoryCache"' in log
    assert "Executing command" not in log


async def test_docker_worker_payload_is_rejected(gw: GW):
    resolution, log = await run_one(gw, {"image": "ubuntu:24.04", "command": ["true"], "maxRunTime": 30})
    assert resolution == "exception/malformed-payload"
    # Upstream's text for a worker pool without d2g (d2gConfig.enableD2G false, the default).
    assert (
        f"docker worker payload detected, but D2G is not enabled on this worker pool "
        f"(test-provisioner/{gw.worker_type})." in log
    )
    assert f"/worker-manager/test-provisioner%2F{gw.worker_type}) and ask for D2G to be enabled." in log


async def test_valid_payload(gw: GW):
    resolution, log = await run_one(gw, {"command": HELLO, "env": {"A": "b"}, "maxRunTime": 3})
    assert resolution == "completed/completed"
    assert "hello world!" in log


async def test_max_task_run_time(gw: GW):
    task_id = await gw.submit({"command": HELLO, "maxRunTime": 310})
    await gw.run(maxTaskRunTime=300)
    assert await gw.resolution(task_id) == "exception/malformed-payload"
    assert "task's maxRunTime of 310 exceeded allowed maximum of 300" in await gw.log(task_id)


@pytest.mark.parametrize(
    "artifact_expires,resolution,message",
    [
        (5, "exception/malformed-payload", "expires before task deadline"),
        (10, "completed/completed", None),
        (15, "completed/completed", None),
        (20, "completed/completed", None),
        (25, "exception/malformed-payload", "expires after task expiry"),
    ],
)
async def test_artifact_expiry_between_deadline_and_task_expiry(
    gw: GW, artifact_expires: int, resolution: str, message: str | None
):
    deadline, expires = at(10), at(20)
    if artifact_expires == 10:
        when = deadline
    elif artifact_expires == 20:
        when = expires
    else:
        when = at(artifact_expires)
    payload = {
        "command": [["/bin/sh", "-c", "echo hi > a.txt"]],
        "maxRunTime": 30,
        "artifacts": [{"type": "file", "path": "a.txt", "expires": when}],
    }
    got, log = await run_one(gw, payload, deadline=deadline, expires=expires)
    assert got == resolution
    if message:
        assert message in log


@pytest.mark.parametrize("feature", ["interactive", "loopbackVideo", "loopbackAudio"])
async def test_unsupported_features_are_malformed(gw: GW, feature: str):
    resolution, log = await run_one(gw, {"command": HELLO, "maxRunTime": 30, "features": {feature: True}})
    assert resolution == "exception/malformed-payload"
    assert f"features.{feature}, which this worker does not support" in log


async def test_chain_of_trust_refused_by_insecure_engine(gw: GW):
    resolution, log = await run_one(
        gw, {"command": HELLO, "maxRunTime": 30, "features": {"chainOfTrust": True}}
    )
    assert resolution == "exception/malformed-payload"
    assert (
        "Was expecting attempt to read private chain of trust key as task user to fail - however, it did not!"
        in log
    )


async def test_disabled_feature_is_malformed(gw: GW):
    task_id = await gw.submit({"command": HELLO, "maxRunTime": 30, "features": {"chainOfTrust": True}})
    await gw.run(enableChainOfTrust=False)
    assert await gw.resolution(task_id) == "exception/malformed-payload"
    assert (
        f'this task is attempting to use feature "Chain of Trust", but it\'s not enabled on this worker pool '
        f"(test-provisioner/{gw.worker_type})" in await gw.log(task_id)
    )


async def test_os_groups(gw: GW):
    import grp
    import os

    mine = grp.getgrgid(os.getegid()).gr_name
    scope = f"generic-worker:os-group:test-provisioner/{gw.worker_type}/{mine}"
    resolution, log = await run_one(
        gw, {"command": HELLO, "maxRunTime": 30, "osGroups": [mine]}, scopes=[scope]
    )
    assert resolution == "completed/completed"
    assert f"Not adding task user to group(s) ['{mine}'] since we are running as current user." in log
    resolution, log = await run_one(
        gw,
        {"command": HELLO, "maxRunTime": 30, "osGroups": ["no-such-group-x"]},
        scopes=["generic-worker:os-group:*"],
    )
    assert resolution == "exception/malformed-payload"
    assert "task payload contains unsupported osGroups: ['no-such-group-x']" in log


async def test_missing_scopes_for_os_groups(gw: GW):
    resolution, log = await run_one(gw, {"command": HELLO, "maxRunTime": 30, "osGroups": ["abc", "def"]})
    assert resolution == "exception/malformed-payload"
    assert f"generic-worker:os-group:test-provisioner/{gw.worker_type}/abc, and\n" in log.replace(
        "[taskcluster:error] ", ""
    )
    assert f"generic-worker:os-group:test-provisioner/{gw.worker_type}/def" in log
    assert "You probably should add some scopes to your task definition" in log


async def test_assume_scopes_are_expanded(gw: GW):
    import aiohttp
    import taskcluster.aio

    role = f"project:gw-test:{gw.worker_type}"
    async with aiohttp.ClientSession() as session:
        auth = taskcluster.aio.Auth(gw.tc.options(), session=session)
        await auth.createRole(role, {"description": "test", "scopes": ["generic-worker:os-group:*"]})
    import grp
    import os

    mine = grp.getgrgid(os.getegid()).gr_name
    resolution, _ = await run_one(
        gw, {"command": HELLO, "maxRunTime": 30, "osGroups": [mine]}, scopes=[f"assume:{role}"]
    )
    assert resolution == "completed/completed"
