"""Chain of trust in the multiuser engine against tc-local (root only), verified as consumers do.

The certificate is checked the way scriptworker checks it (ed25519 over the exact bytes, shape,
taskId, every artifact's hash against the downloaded bytes) and the OpenPGP document with the
real `gpg --verify`.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from generic_worker.exitcodes import ExitCode

from ..cot.verify import KeySet, check_like_scriptworker, gpg_plaintext, gpg_verify, make_keys
from .harness import GW
from .multiuser_helpers import mu_root, multiuser, needs_root

__all__ = ["mu_root"]  # the fixture, used by name

pytestmark = [pytest.mark.root, needs_root]

X_TXT = b"test artifact\n"
JPG = bytes(range(256)) * 8
ADDITIONAL = {"foo": "bar1", "task": {"foo": "bar2", "schedulerId": "fake-scheduler-id"}, "runId": 99}
ENVIRONMENT = {
    "privateIP": "87.65.43.21",
    "instanceId": "test-instance-id",
    "instanceType": "p3.enormous",
    "region": "test-worker-group",
}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    return make_keys(tmp_path_factory.mktemp("cot-keys"))


def with_keys(gw: GW, root: Path, keys: KeySet, **overrides: object) -> None:
    multiuser(
        gw,
        root,
        enableChainOfTrust=True,
        ed25519SigningKeyLocation=str(keys.ed25519_private),
        signingKeyLocation=str(keys.openpgp_private),
        **ENVIRONMENT,
        **overrides,
    )


def script(*lines: str) -> list[list[str]]:
    return [["/bin/sh", "-ec", "\n".join(lines)]]


async def test_certificate_signed_both_ways_lists_every_upload(gw: GW, mu_root: Path, keys: KeySet) -> None:
    with_keys(gw, mu_root, keys)
    task_id = await gw.submit(
        {
            "command": script(
                "mkdir -p SampleArtifacts/_ SampleArtifacts/b/c",
                "printf 'test artifact\\n' > SampleArtifacts/_/X.txt",
                "python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 8)' > SampleArtifacts/b/c/d.jpg",
                f"echo '{json.dumps(ADDITIONAL)}' > chain-of-trust-additional-data.json",
                "echo fake > fake.json",
                # The task user must not be able to read the keys.
                f"cat {keys.ed25519_private} || echo ED25519-KEY-UNREADABLE",
                f"cat {keys.openpgp_private} || echo OPENPGP-KEY-UNREADABLE",
            ),
            "maxRunTime": 60,
            "features": {"chainOfTrust": True},
            "artifacts": [
                {"type": "file", "path": "SampleArtifacts/_/X.txt", "name": "public/build/X.txt"},
                {"type": "file", "path": "SampleArtifacts/b/c/d.jpg"},
                # Payload artifacts may not take reserved names: the worker's own are published.
                {"type": "file", "path": "fake.json", "name": "public/chain-of-trust.json"},
                {"type": "file", "path": "fake.json", "name": "public/chain-of-trust.json.sig"},
                {"type": "file", "path": "fake.json", "name": "public/logs/certified.log"},
            ],
        }
    )
    assert await gw.run(numberOfTasksToRun=1) == ExitCode.TASKS_COMPLETE
    log = await gw.log(task_id)
    assert await gw.resolution(task_id) == "completed/completed", log
    assert "ED25519-KEY-UNREADABLE" in log and "OPENPGP-KEY-UNREADABLE" in log
    assert "BEGIN PGP PRIVATE KEY" not in log
    assert (
        "Not uploading artifact public/chain-of-trust.json.sig found in task.payload.artifacts section, "
        "since this will be uploaded later by Chain of Trust"
    ) in log

    listed = await gw.artifacts(task_id)
    assert set(listed) >= {
        "public/logs/live_backing.log",
        "public/logs/certified.log",
        "public/chain-of-trust.json",
        "public/chain-of-trust.json.sig",
        "public/chainOfTrust.json.asc",
        "public/build/X.txt",
        "SampleArtifacts/b/c/d.jpg",
    }
    assert listed["public/chain-of-trust.json.sig"]["contentType"] == "application/octet-stream"
    for name in ("public/logs/certified.log", "public/chain-of-trust.json", "public/chainOfTrust.json.asc"):
        assert listed[name]["contentType"] == "text/plain; charset=utf-8"
        status, headers, _ = await gw.fetch(task_id, name)
        assert status == 200 and headers.get("Content-Encoding") == "gzip", name

    certified = await gw.content(task_id, "public/logs/certified.log")
    assert b"=== Task Finished ===" in certified and b"Exit Code: 0" in certified
    downloads = {
        "public/build/X.txt": await gw.content(task_id, "public/build/X.txt"),
        "SampleArtifacts/b/c/d.jpg": await gw.content(task_id, "SampleArtifacts/b/c/d.jpg"),
        "public/logs/certified.log": certified,
    }
    assert downloads["public/build/X.txt"] == X_TXT and downloads["SampleArtifacts/b/c/d.jpg"] == JPG
    content = await gw.content(task_id, "public/chain-of-trust.json")
    signature = await gw.content(task_id, "public/chain-of-trust.json.sig")
    cert = check_like_scriptworker(content, signature, keys.ed25519_public, task_id, downloads)

    # Upstream's expectations (chain_of_trust_test.go), with the additional data merged in.
    assert set(cert["artifacts"]) == set(downloads)
    assert cert["artifacts"]["public/build/X.txt"]["sha256"] == (
        "8308d593eb56527137532595a60255a3fcfbe4b6b068e29b22d99742bad80f6f"
    )
    assert (cert["runId"], cert["workerGroup"], cert["workerId"]) == (
        0,
        "test-worker-group",
        "test-worker-id",
    )
    assert cert["environment"] == {
        "publicIpAddress": "127.0.0.1",
        "privateIpAddress": "87.65.43.21",
        "instanceId": "test-instance-id",
        "instanceType": "p3.enormous",
        "region": "test-worker-group",
    }
    assert cert["foo"] == "bar1"
    async with aiohttp.ClientSession() as session:
        definition = await gw.queue(session).task(task_id)
    assert cert["task"] == {**definition, "foo": "bar2"}
    assert cert["task"]["schedulerId"] != "fake-scheduler-id"

    # The seed's OpenPGP document: the same certificate, clear-signed, verified by real gpg.
    signed = (await gw.content(task_id, "public/chainOfTrust.json.asc")).decode()
    ok, why = gpg_verify(signed, keys.openpgp_public)
    assert ok, why
    assert gpg_plaintext(signed, keys.openpgp_public).startswith(content.decode() + "\n")


async def test_a_task_running_as_the_worker_user_cannot_have_chain_of_trust(
    gw: GW, mu_root: Path, keys: KeySet
) -> None:
    with_keys(gw, mu_root, keys, enableRunTaskAsCurrentUser=True)
    task_id = await gw.submit(
        {
            "command": script("echo should not run"),
            "maxRunTime": 30,
            "features": {"chainOfTrust": True, "runTaskAsCurrentUser": True},
        },
        scopes=[f"generic-worker:run-task-as-current-user:test-provisioner/{gw.worker_type}"],
    )
    assert await gw.run(numberOfTasksToRun=1) == ExitCode.TASKS_COMPLETE
    log = await gw.log(task_id)
    assert await gw.resolution(task_id) == "exception/malformed-payload", log
    assert (
        "was expecting attempt to read private chain of trust key as task user to fail - however, it did not"
        in log
    )
    assert "should not run" not in log.replace("echo should not run", "")
    assert "public/chain-of-trust.json" not in await gw.artifacts(task_id)


@pytest.mark.parametrize("objects", [False, True], ids=["s3", "object-service"])
async def test_ed25519_only_and_a_failing_task_still_get_a_certificate(
    gw: GW, mu_root: Path, keys: KeySet, objects: bool
) -> None:
    multiuser(
        gw,
        mu_root,
        enableChainOfTrust=True,
        ed25519SigningKeyLocation=str(keys.ed25519_private),
        createObjectArtifacts=objects,
    )
    task_id = await gw.submit(
        {
            "command": script("echo built > out.txt", "exit 3"),
            "maxRunTime": 30,
            "features": {"chainOfTrust": True},
            "artifacts": [{"type": "file", "path": "out.txt", "name": "public/out.txt"}],
        }
    )
    assert await gw.run(numberOfTasksToRun=1) == ExitCode.TASKS_COMPLETE
    log = await gw.log(task_id)
    assert await gw.resolution(task_id) == "failed/failed", log
    listed = await gw.artifacts(task_id)
    assert "public/chainOfTrust.json.asc" not in listed
    downloads = {
        "public/out.txt": await gw.content(task_id, "public/out.txt"),
        "public/logs/certified.log": await gw.content(task_id, "public/logs/certified.log"),
    }
    assert b"Exit Code: 3" in downloads["public/logs/certified.log"]
    content = await gw.content(task_id, "public/chain-of-trust.json")
    signature = await gw.content(task_id, "public/chain-of-trust.json.sig")
    cert = check_like_scriptworker(content, signature, keys.ed25519_public, task_id, downloads)
    assert set(cert["artifacts"]) == set(downloads)
    assert "foo" not in cert  # no additional data: upstream's member order, not sorted
    assert list(cert)[:3] == ["chainOfTrustVersion", "artifacts", "task"]


async def test_an_unusable_signing_key_stops_the_worker(gw: GW, mu_root: Path, tmp_path: Path) -> None:
    key = tmp_path / "ed25519_private_key"
    key.write_text("not a key\n")
    key.chmod(0o600)
    multiuser(gw, mu_root, enableChainOfTrust=True, ed25519SigningKeyLocation=str(key))
    assert await gw.run(numberOfTasksToRun=1) == ExitCode.INVALID_CONFIG


async def test_additional_data_is_read_with_the_task_users_rights(
    gw: GW, mu_root: Path, keys: KeySet
) -> None:
    multiuser(gw, mu_root, enableChainOfTrust=True, ed25519SigningKeyLocation=str(keys.ed25519_private))
    task_id = await gw.submit(
        {
            # A link to a file only root may read: the worker must not read it on the task's behalf.
            "command": script(f"ln -s {keys.ed25519_private} chain-of-trust-additional-data.json"),
            "maxRunTime": 30,
            "features": {"chainOfTrust": True},
        }
    )
    assert await gw.run(numberOfTasksToRun=1) == ExitCode.TASKS_COMPLETE
    log = await gw.log(task_id)
    assert await gw.resolution(task_id) == "failed/failed", log
    assert "chain-of-trust-additional-data.json cannot be opened: Permission denied" in log
    listed = await gw.artifacts(task_id)
    assert "public/logs/certified.log" in listed
    assert "public/chain-of-trust.json" not in listed and "public/chain-of-trust.json.sig" not in listed
