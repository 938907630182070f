"""A d2g task in the multiuser engine with chain of trust (root and Docker only).

The task user joins group `docker` (the translation's `osGroups`), the container runs as the
image's user as upstream runs it, nothing of the worker's is visible inside it, and the signed
certificate carries the docker-worker definition and the worker's `imageHash` and
`imageArtifactHash`, verified as scriptworker does.
"""

from __future__ import annotations

import hashlib
import json
import subprocess

import aiohttp
import pytest
import zstandard

from generic_worker.exitcodes import ExitCode
from tests.cot.verify import KeySet, check_like_scriptworker, make_keys
from tests.integration.harness import GW
from tests.integration.multiuser_helpers import multiuser, needs_root, reachable_dir

from .conftest import IMAGE, leftover_containers
from .test_d2g_tasks import gw, tc

__all__ = ["gw", "tc"]  # fixtures, used by name

pytestmark = [pytest.mark.root, needs_root, pytest.mark.usefixtures("dockerd")]

INSIDE = r"""
id
for f in "$@"; do test -e "$f" && echo "SEEN-$f"; done
env | grep -i -e access -e certificate -e clientid -e signingkey && echo CRED""S-SEEN
echo from-container > /out/x.txt
echo container done
"""


async def test_d2g_task_in_multiuser_engine_with_chain_of_trust(gw: GW, image_tar: bytes) -> None:
    root = reachable_dir()
    (root / "keys").mkdir(mode=0o700)
    keys: KeySet = make_keys(root / "keys")
    multiuser(
        gw,
        root,
        enableChainOfTrust=True,
        ed25519SigningKeyLocation=str(keys.ed25519_private),
        d2gConfig={"enableD2G": True, "allowChainOfTrust": True},
    )
    source = root / "src"
    source.mkdir(mode=0o755)
    # zstd: decompressed by the worker, as the task user, into the task directory.
    published = zstandard.ZstdCompressor().compress(image_tar)
    (source / "image.tar.zst").write_bytes(published)
    (source / "image.tar.zst").chmod(0o644)
    producer = await gw.submit(
        {
            "command": [["/bin/cp", str(source / "image.tar.zst"), "image.tar.zst"]],
            "maxRunTime": 60,
            "artifacts": [{"type": "file", "path": "image.tar.zst", "name": "public/image.tar.zst"}],
        }
    )
    payload = {
        "image": {"type": "task-image", "taskId": producer, "path": "public/image.tar.zst"},
        # The worker's keys and state directory (its credentials' home) must not exist inside.
        "command": [
            "sh",
            "-c",
            INSIDE,
            "sh",
            str(keys.ed25519_private),
            str(root / "keys"),
            str(gw.tmp),
            "/out",
        ],
        "maxRunTime": 60,
        "features": {"chainOfTrust": True},
        "artifacts": {"public/x.txt": {"type": "file", "path": "/out/x.txt"}},
    }
    scopes = ["queue:get-artifact:public/image.tar.zst"]
    task_id = await gw.submit(payload, dependencies=[producer], scopes=scopes)
    try:
        code = await gw.run(numberOfTasksToRun=2, idleTimeoutSecs=5)
        assert code == ExitCode.TASKS_COMPLETE, [
            code,
            await gw.resolution(producer),
            (await gw.log(producer))[-3000:],
        ]
        log = await gw.log(task_id)
        assert await gw.resolution(task_id) == "completed/completed", log
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)
    # The task user (not root) ran `docker run`, in group docker; the container as the image's user.
    assert "Added task user task_" in log and "to group(s) ['docker']" in log, log
    assert "[d2g] Loading docker image" in log  # decompressed and loaded as the task user
    assert "uid=0" in log and "container done" in log
    assert "SEEN-/out" in log  # the probe works: the image's own directory is seen
    assert "SEEN-/tmp" not in log and "CREDS-SEEN" not in log, log
    assert leftover_containers() == []

    x = await gw.content(task_id, "public/x.txt")
    assert x == b"from-container\n"
    certified = await gw.content(task_id, "public/logs/certified.log")
    content = await gw.content(task_id, "public/chain-of-trust.json")
    signature = await gw.content(task_id, "public/chain-of-trust.json.sig")
    downloads = {"public/x.txt": x, "public/logs/certified.log": certified}
    cert = check_like_scriptworker(content, signature, keys.ed25519_public, task_id, downloads)
    # The original docker-worker definition, as the queue has it.
    async with aiohttp.ClientSession() as session:
        definition = await gw.queue(session).task(task_id)
    assert cert["task"]["payload"] == definition["payload"] == payload
    assert cert["task"]["scopes"] == scopes
    image_id = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", IMAGE],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert cert["environment"]["imageHash"] == image_id
    assert cert["environment"]["imageArtifactHash"] == "sha256:" + hashlib.sha256(published).hexdigest()
    assert json.loads(content)["environment"]["imageHash"].startswith("sha256:")
