"""d2g tasks run by the real worker against tc-local, with a real Docker daemon.

One worker run carries several tasks where it can (each run costs a few seconds): a native task
publishes the image, d2g tasks use it as a task image, an indexed image and from the image cache.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import lz4.frame
import pytest
import zstandard

from generic_worker.d2g.cache import CachedImage, ImageCache, images_in_use
from generic_worker.d2g.host import missing_capabilities
from generic_worker.engine.worker import WorkerContext
from generic_worker.exitcodes import ExitCode
from generic_worker.features.d2g_image_gc import D2GImageGCFeature
from tclocal.testing import RunningTCLocal, running_tclocal
from tests.integration.harness import GW, wait_for
from tests.integration.test_lifecycle import start_worker

from .conftest import leftover_containers

pytestmark = pytest.mark.usefixtures("dockerd")


@pytest.fixture(scope="module")
def tc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTCLocal]:
    with running_tclocal(tmp_path_factory.mktemp("tc"), claim_work_wait=1.0) as service:
        yield service


@pytest.fixture
def gw(tc: RunningTCLocal, tmp_path: Path) -> GW:
    g = GW(tc, tmp_path)
    g.raw_config["d2gConfig"] = {"enableD2G": True}
    return g


def publish_image(tmp: Path, data: bytes, name: str) -> dict[str, Any]:
    """A native payload publishing `data` as artifact `public/<name>`."""
    source = tmp / name
    source.write_bytes(data)
    copy = f"import shutil; shutil.copy({str(source)!r}, {name!r})"
    return {
        "command": [[sys.executable, "-c", copy]],
        "maxRunTime": 60,
        "artifacts": [{"type": "file", "path": name, "name": f"public/{name}"}],
    }


SCRIPT = r"""
echo "first output $GREETING"
cat /cache/count 2>/dev/null || echo 0 > /cache/count
echo "$(( $(cat /cache/count) + 1 ))" > /cache/count
echo "cache count $(cat /cache/count)"
echo file > /out/a.txt
mkdir -p /out/dir/sub && echo nested > /out/dir/sub/b.txt
echo vol > /vol/c.txt
wget -q -O /out/task.json "$TASKCLUSTER_PROXY_URL/api/queue/v1/task/$TASK_ID" && echo proxy ok
"""


def d2g_payload(image: Any) -> dict[str, Any]:
    return {
        "image": image,
        "command": ["sh", "-c", SCRIPT],
        "env": {"GREETING": "hello from d2g"},
        "maxRunTime": 120,
        "cache": {"d2g-test-cache": "/cache"},
        "features": {"taskclusterProxy": True},
        "artifacts": {
            "public/a.txt": {"type": "file", "path": "/out/a.txt"},
            "public/dir": {"type": "directory", "path": "/out/dir"},
            "public/vol": {"type": "volume", "path": "/vol"},
            "public/task.json": {"type": "file", "path": "/out/task.json"},
            "public/missing.txt": {"type": "file", "path": "/out/never-written.txt"},
        },
    }


D2G_SCOPES = ["docker-worker:cache:d2g-test-cache", "queue:get-task:*"]


async def test_task_image_indexed_image_cache_artifacts_and_proxy(
    gw: GW, tmp_path: Path, image_tar: bytes
) -> None:
    namespace = f"d2g.test.{gw.worker_type.replace('-', '_')}"
    compressed = zstandard.ZstdCompressor().compress(image_tar)
    producer = await gw.submit(
        publish_image(tmp_path, compressed, "image.tar.zst"), routes=[f"index.{namespace}"]
    )
    task_image = {"type": "task-image", "taskId": producer, "path": "public/image.tar.zst"}
    first = await gw.submit(d2g_payload(task_image), dependencies=[producer], scopes=D2G_SCOPES)
    indexed = {"type": "indexed-image", "namespace": namespace, "path": "public/image.tar.zst"}
    second = await gw.submit(d2g_payload(indexed), dependencies=[first], scopes=D2G_SCOPES)

    code = await gw.run(numberOfTasksToRun=3, idleTimeoutSecs=5)
    assert code == ExitCode.TASKS_COMPLETE, [await gw.resolution(producer), await gw.log(first)]
    log = await gw.log(first)
    assert await gw.resolution(first) == "completed/completed", log
    assert "[d2g] Loading docker image" in log
    assert "first output hello from d2g" in log
    assert "cache count 1" in log and "proxy ok" in log
    assert "docker run -t --name taskcontainer_" in log
    assert '[d2g] Artifact "public/missing.txt" not found at "/out/never-written.txt"' in log

    artifacts = await gw.artifacts(first)
    assert await gw.content(first, "public/a.txt") == b"file\n"
    assert await gw.content(first, "public/dir/sub/b.txt") == b"nested\n"
    assert await gw.content(first, "public/vol/c.txt") == b"vol\n"
    assert json.loads(await gw.content(first, "public/task.json"))["payload"]["image"] == task_image
    assert artifacts["public/missing.txt"]["storageType"] == "error"

    # Same content through the index: no second `docker load`; the cache persisted.
    log = await gw.log(second)
    assert await gw.resolution(second) == "completed/completed", log
    assert "[d2g] Using cached docker image" in log
    assert "[d2g] Loading docker image" not in log
    assert "cache count 2" in log
    assert leftover_containers() == []
    cache_file = json.loads((gw.tmp / "d2g-image-cache.json").read_text())
    assert len(cache_file) == 1


async def test_exit_status_retry_and_max_run_time_leave_no_container(
    gw: GW, tmp_path: Path, image_tar: bytes
) -> None:
    producer = await gw.submit(publish_image(tmp_path, image_tar, "image.tar"))
    image = {"type": "task-image", "taskId": producer, "path": "public/image.tar"}
    retry = await gw.submit(
        {
            "image": image,
            "command": ["sh", "-c", "echo retry me; exit 3"],
            "maxRunTime": 60,
            "onExitStatus": {"retry": [3]},
            "log": "public/d2g/retry.log",
        },
        dependencies=[producer],
        retries=0,
    )
    slow = await gw.submit(
        {"image": image, "command": ["sh", "-c", "echo started; exec sleep 7391"], "maxRunTime": 3},
        dependencies=[producer],
    )
    assert await gw.run(numberOfTasksToRun=3) == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(retry) == "exception/intermittent-task"
    # `log` names the log artifacts: the backing log gets `_backing` before the extension.
    names = set(await gw.artifacts(retry))
    assert {"public/d2g/retry.log", "public/d2g/retry_backing.log"} <= names, names
    assert b"retry me" in await gw.content(retry, "public/d2g/retry_backing.log")
    log = await gw.log(slow)
    assert await gw.resolution(slow) == "failed/failed", log
    assert "started" in log and "max run time exceeded" in log
    assert leftover_containers() == []
    assert _container_processes() == []


def _container_processes() -> list[str]:
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in ps.splitlines() if line.strip() == "sleep 7391"]


async def test_named_image_pull_fails_clearly_offline(gw: GW) -> None:
    task = await gw.submit(
        {"image": "gw-d2g-test/not-in-any-registry:1", "command": ["true"], "maxRunTime": 30}
    )
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    log = await gw.log(task)
    assert await gw.resolution(task) == "exception/internal-error"
    assert "[d2g] could not load docker image" in log
    assert "docker pull --quiet gw-d2g-test/not-in-any-registry:1" in log


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"capabilities": {"privileged": True}},
            "(docker-worker:capability:privileged, or\ndocker-worker:capability:privileged:test-provisioner/",
        ),
        ({"capabilities": {"devices": {"kvm": True}}}, "(docker-worker:capability:device:kvm, or\n"),
    ],
)
async def test_capability_scopes_refused(gw: GW, payload: dict[str, Any], expected: str) -> None:
    task = await gw.submit({"image": "busybox", "command": ["true"], "maxRunTime": 30, **payload})
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    log = await gw.log(task)
    assert await gw.resolution(task) == "exception/malformed-payload"
    assert "d2g task requires scopes:" in log
    assert all(line in log for line in expected.split("\n"))


async def test_invalid_docker_worker_payload_is_malformed(gw: GW) -> None:
    task = await gw.submit({"image": "busybox", "command": ["true"]})
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    log = await gw.log(task)
    assert await gw.resolution(task) == "exception/malformed-payload"
    assert "(root): maxRunTime is required" in log
    assert "Docker-worker payloads (d2g) must conform to the following jsonschema:" in log
    assert '"supersederUrl"' in log


SLEEPER = {
    "command": ["sh", "-c", "touch /vol/started; exec sleep 7392"],
    "maxRunTime": 900,
    "artifacts": {"public/vol": {"type": "volume", "path": "/vol"}},
}


def started(gw: GW) -> bool:
    return any((d / "volume0" / "started").exists() for d in gw.task_dirs())


def container_sleepers() -> list[str]:
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in ps.splitlines() if line.strip() == "sleep 7392"]


async def test_cancel_and_sigterm_leave_no_container_and_no_process(
    gw: GW, tmp_path: Path, image_tar: bytes
) -> None:
    producer = await gw.submit(publish_image(tmp_path, image_tar, "image.tar"))
    image = {"type": "task-image", "taskId": producer, "path": "public/image.tar"}
    canceled = await gw.submit({"image": image, **SLEEPER}, dependencies=[producer])
    worker = asyncio.create_task(gw.run(numberOfTasksToRun=2, taskStatusPollIntervalSecs=1))
    await wait_for(lambda: started(gw), timeout=60)
    async with aiohttp.ClientSession() as session:
        await gw.queue(session).cancelTask(canceled)
    assert await asyncio.wait_for(worker, 60) == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(canceled) == "exception/canceled"
    assert leftover_containers() == [] and container_sleepers() == []

    # Worker shutdown (SIGTERM to a `generic-worker run` process) while the container runs.
    for d in gw.task_dirs():
        shutil.rmtree(d / "volume0", ignore_errors=True)
    shut_down = await gw.submit({"image": image, **SLEEPER}, dependencies=[producer])
    proc = await start_worker(gw.write_config(gw.tmp / "gw.json"), gw.tmp)
    await wait_for(lambda: started(gw), timeout=60)
    proc.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == ExitCode.WORKER_SHUTDOWN, stderr.decode()[-2000:]
    assert await gw.resolution(shut_down) == "exception/worker-shutdown"
    assert leftover_containers() == [] and container_sleepers() == []


async def test_disk_space_gc_removes_cached_images(gw: GW, tmp_path: Path, dockerd: None) -> None:
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "rootfs" / "marker").write_text(gw.worker_type)  # a layer no other image shares
    rootfs = subprocess.run(
        ["tar", "-C", str(tmp_path / "rootfs"), "-c", "."], check=True, capture_output=True
    )
    name = f"gw-d2g-test/evict:{gw.worker_type}"
    subprocess.run(["docker", "import", "-", name], input=rootfs.stdout, check=True, capture_output=True)
    image_id = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ImageCache(tmp_path).put("f" * 64, CachedImage(image_id, name))
    feature = D2GImageGCFeature()
    # More free space required than any disk has: the GC runs.
    await feature.initialise(WorkerContext(gw.config(requiredDiskSpaceMegabytes=1 << 40), None, tmp_path))  # type: ignore[arg-type]
    images_in_use[image_id] += 1  # a running task uses it: it stays
    try:
        assert await feature.before_claim() is True
        assert list(ImageCache(tmp_path).read()) == ["f" * 64]
    finally:
        images_in_use[image_id] -= 1
    assert await feature.before_claim() is True
    assert ImageCache(tmp_path).read() == {}
    gone = subprocess.run(["docker", "image", "inspect", image_id], capture_output=True)
    assert gone.returncode != 0


async def test_privileged_with_its_scope(gw: GW, tmp_path: Path, image_tar: bytes) -> None:
    producer = await gw.submit(publish_image(tmp_path, image_tar, "image.tar"))
    image = {"type": "task-image", "taskId": producer, "path": "public/image.tar"}
    task = await gw.submit(
        {"image": image, "command": ["true"], "maxRunTime": 60, "capabilities": {"privileged": True}},
        dependencies=[producer],
        scopes=["docker-worker:capability:privileged"],
    )
    assert await gw.run(numberOfTasksToRun=2) == ExitCode.TASKS_COMPLETE
    log = await gw.log(task)
    if missing_capabilities():  # this VM: docker cannot apply the capabilities
        assert await gw.resolution(task) == "exception/malformed-payload"
        assert "[d2g] this worker cannot run privileged containers: its capability bounding set lacks" in log
        assert "CAP_SYS_RESOURCE" in log or "cap " in log
    else:
        assert await gw.resolution(task) == "completed/completed", log
    assert leftover_containers() == []


async def test_gzip_and_lz4_images_and_the_cache_across_restarts(
    gw: GW, tmp_path: Path, image_tar: bytes
) -> None:
    gz = await gw.submit(publish_image(tmp_path, gzip.compress(image_tar, compresslevel=1), "image.tar.gz"))
    lz = await gw.submit(publish_image(tmp_path, lz4.frame.compress(image_tar), "image.tar.lz4"))
    hello = {"command": ["sh", "-c", "echo container says hi"], "maxRunTime": 60}
    from_gz = await gw.submit(
        {"image": {"type": "task-image", "taskId": gz, "path": "public/image.tar.gz"}, **hello},
        dependencies=[gz],
    )
    from_lz4 = await gw.submit(
        {"image": {"type": "task-image", "taskId": lz, "path": "public/image.tar.lz4"}, **hello},
        dependencies=[lz, from_gz],
    )
    assert await gw.run(numberOfTasksToRun=4) == ExitCode.TASKS_COMPLETE
    for task in (from_gz, from_lz4):
        log = await gw.log(task)
        assert await gw.resolution(task) == "completed/completed", log
        assert "[d2g] Loading docker image" in log and "container says hi" in log

    # A restarted worker (same state directory) finds the gzip image in its image cache.
    again = await gw.submit(
        {"image": {"type": "task-image", "taskId": gz, "path": "public/image.tar.gz"}, **hello},
        dependencies=[gz],
    )
    assert await gw.run(numberOfTasksToRun=1) == ExitCode.TASKS_COMPLETE
    log = await gw.log(again)
    assert await gw.resolution(again) == "completed/completed", log
    assert "[d2g] Using cached docker image" in log and "[d2g] Loading docker image" not in log
