"""D2G (`d2gConfig.enableD2G`): runs a translated docker-worker payload's container.

Start: makes the image ready (an artifact image is hashed and `docker load`ed unless the image
cache already has its content; a registry image is `docker pull`ed every time, as upstream),
records the chain-of-trust data, writes `env.list` and fills the run-time placeholders of the
`docker run` command. Stop (before payload artifacts upload, after the command executor killed
`docker run`): copies artifacts out with `docker cp` (a missing one is a warning: d2g artifacts are
optional) and removes the container with `docker rm --force`, so no container outlives its task
on completion, failure, maxRunTime, cancellation or worker shutdown.

The worker-side part (sweeping what a crashed worker left, the disk-space GC of cached images) is
the D2G Image GC feature, which must come before the mounts feature in the list.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from generic_worker.d2g import docker
from generic_worker.d2g.cache import CachedImage, ImageCache, images_in_use
from generic_worker.d2g.host import missing_capabilities
from generic_worker.d2g.images import IMAGE_FILE
from generic_worker.d2g.task import COT_ADDITIONAL_DATA, D2GTask, write_task_file
from generic_worker.d2g.translate import DOCKER_NETWORK, ENV_FILE, IMAGE_ID, PROXY_GATEWAY, TASK_DIR
from generic_worker.engine.feature import FeatureBase, TaskFeature, TaskFeatureBase
from generic_worker.engine.taskrun import TaskRun
from generic_worker.errors import ExecutionErrors, TaskError
from generic_worker.mounts.diskspace import MIB, Budget
from generic_worker.mounts.errors import MountError
from generic_worker.mounts.files import decompress_file, hash_file

if TYPE_CHECKING:
    from generic_worker.engine.worker import WorkerContext

log = logging.getLogger(__name__)

COPY_CONCURRENCY = 10
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class D2GFeature(FeatureBase):
    """Runs docker-worker payloads' containers (see the module docstring)."""

    name = "D2G"

    def __init__(self) -> None:
        self.cache: ImageCache | None = None
        self._lock = asyncio.Lock()  # one image load at a time; the cache file is shared

    async def initialise(self, worker: WorkerContext) -> None:
        """The image cache lives in the worker's state directory."""
        self.cache = ImageCache(worker.state_dir)

    def is_enabled(self, task: TaskRun) -> bool:
        """`d2gConfig.enableD2G` (payload validation already refused d2g tasks without it)."""
        return task.config.d2g.enable_d2g

    def is_requested(self, task: TaskRun) -> bool:
        """Tasks whose payload was a docker-worker payload."""
        return task.d2g is not None

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """The per-task part."""
        assert self.cache is not None and task.d2g is not None
        return _D2GTask(task, task.d2g, self)


class _D2GTask(TaskFeatureBase):
    def __init__(self, task: TaskRun, d2g: D2GTask, feature: D2GFeature) -> None:
        self.task = task
        self.d2g = d2g
        self.feature = feature
        self.held = ""

    async def start(self) -> None:
        task, d2g = self.task, self.d2g
        if "--privileged" in task.payload["command"][0]:
            missing = missing_capabilities()
            if missing:
                raise TaskError.malformed_payload(
                    "[d2g] this worker cannot run privileged containers: its capability bounding "
                    f"set lacks {', '.join(missing)} (set d2gConfig.allowPrivileged to false here)"
                )
        try:
            await self._ready_image()
            if d2g.original_payload.get("features", {}).get("chainOfTrust"):
                d2g.image_hash = await docker.image_id(d2g.image_id) or d2g.image_id
        except (docker.DockerError, MountError) as e:
            raise TaskError.internal_error(f"[d2g] could not load docker image: {e}") from e
        # Written as the task user (it owns the task directory), never through a link it left.
        # The chain-of-trust feature takes imageHash from `d2g` itself, not from this file.
        try:
            if d2g.original_payload.get("features", {}).get("chainOfTrust"):
                await task.as_task_user(
                    write_task_file, task.task_dir / COT_ADDITIONAL_DATA, d2g.chain_of_trust_data()
                )
            await task.as_task_user(
                write_task_file, task.task_dir / ENV_FILE, d2g.translation.env_list.encode()
            )
        except OSError as e:
            raise TaskError.internal_error(f"[d2g] could not write to the task directory: {e}") from e
        self._fill_placeholders()

    async def _ready_image(self) -> None:
        task, d2g = self.task, self.d2g
        image = d2g.translation.image
        if not image.is_artifact:
            task.log.info("[d2g] Loading docker image")
            await docker.pull(image.name)
            d2g.image_id = image.name
            task.log.info(f'[d2g] Loaded docker image "{image.name}"')
            return
        image_file = task.task_dir / IMAGE_FILE
        # Read as the task user: the file is in its directory (the kernel checks any link in it).
        d2g.image_artifact_hash = await task.as_task_user(hash_file, image_file)
        cache = self.feature.cache
        assert cache is not None
        async with self.feature._lock:
            cached = cache.get(d2g.image_artifact_hash)
            if cached is not None and await docker.image_id(cached.id) is not None:
                task.log.info(f'[d2g] Using cached docker image "{cached.name}"')
            else:
                task.log.info("[d2g] Loading docker image")
                name = await self._load(image_file)
                image_id = await docker.image_id(name)
                if image_id is None:
                    raise docker.DockerError(f"docker load reported {name!r} but docker has no such image")
                cached = CachedImage(image_id, name)
                cache.put(d2g.image_artifact_hash, cached)
                task.log.info(f'[d2g] Loaded docker image "{name}"')
        d2g.image_id = cached.id
        # Ordering: held before the lock is released, so the disk-space GC never removes it
        # between here and `docker run`.
        images_in_use[cached.id] += 1
        self.held = cached.id
        # The image is in docker now; its tarball would only take disk space in the task directory.
        await asyncio.to_thread(_remove, image_file)

    async def _load(self, image_file: Path) -> str:
        """`docker load`; a zstd tarball is decompressed first (dockerd 20.10 cannot read zstd)."""
        # Every file access in the task directory with the task user's rights (multiuser engine).
        task = self.task
        user = task.command_user
        if await task.as_task_user(_magic, image_file) != ZSTD_MAGIC:
            return await docker.load(image_file, user)
        plain = image_file.with_name(image_file.name + ".tar")
        budget = Budget.measure(task.task_dir, task.config.required_disk_space_megabytes * MIB)
        try:
            await task.as_task_user(decompress_file, image_file, "zst", plain, budget)
            return await docker.load(plain, user)
        finally:
            await asyncio.to_thread(_remove, plain)

    def _fill_placeholders(self) -> None:
        task = self.task
        values = {
            TASK_DIR: str(task.task_dir),
            IMAGE_ID: self.d2g.image_id,
            DOCKER_NETWORK: task.extra_env.get("TASKCLUSTER_DOCKER_NETWORK", ""),
            PROXY_GATEWAY: task.extra_env.get("TASKCLUSTER_PROXY_GATEWAY", ""),
        }
        for argv in task.payload["command"]:
            for i, arg in enumerate(argv):
                for placeholder, value in values.items():
                    arg = arg.replace(placeholder, value)
                argv[i] = arg

    async def stop(self, errors: ExecutionErrors) -> None:
        task, d2g = self.task, self.d2g
        limit = asyncio.Semaphore(COPY_CONCURRENCY)

        async def copy(name: str, source: str, dest: str) -> None:
            async with limit:
                try:
                    await docker.copy_out(d2g.container_name, source, task.task_dir / dest, task.command_user)
                except docker.DockerError as e:
                    task.log.warn(f'[d2g] Artifact "{name}" not found at "{source}": {e}')

        await asyncio.gather(*(copy(a.name, a.source, a.dest) for a in d2g.translation.copy_artifacts))
        try:
            await docker.remove_container(d2g.container_name)
        except docker.DockerError as e:
            errors.add(TaskError.internal_error(f"[d2g] could not remove docker container: {e}"))
        if self.held:
            images_in_use[self.held] -= 1


def _magic(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(4)


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
