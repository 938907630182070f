"""D2G Image GC: the worker-side housekeeping of d2g (no task part).

At worker start (where d2g is enabled) it removes the `taskcontainer_*` containers and
`gw-task-*` networks a crashed worker left behind, and warns when privileged containers cannot
run on this host. Before each claim, when free space under `tasksDir` is below
`requiredDiskSpaceMegabytes`, it removes the images of d2g's image cache that no running task
uses (`docker rmi` by name, never forced) and forgets them. It comes before the mounts feature
in the list, so that, as upstream, docker images go before caches are evicted (and before the
mounts feature gives up for lack of anything to delete).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from generic_worker.d2g import docker
from generic_worker.d2g.cache import ImageCache, images_in_use
from generic_worker.d2g.host import missing_capabilities
from generic_worker.engine.feature import FeatureBase
from generic_worker.engine.taskrun import TaskRun
from generic_worker.mounts.diskspace import MIB, free_bytes

if TYPE_CHECKING:
    from generic_worker.engine.worker import WorkerContext

log = logging.getLogger(__name__)


class D2GImageGCFeature(FeatureBase):
    """Sweeps stale docker resources at start; frees disk space held by cached d2g images."""

    name = "D2G Image GC"

    def __init__(self) -> None:
        self.cache: ImageCache | None = None
        self._tasks_dir = Path(".")
        self._required_bytes = 0

    async def initialise(self, worker: WorkerContext) -> None:
        """Only where d2g is enabled: sweep, warn about privileged containers."""
        if not worker.config.d2g.enable_d2g:
            return
        self.cache = ImageCache(worker.state_dir)
        self._tasks_dir = Path(worker.config.tasks_dir)
        self._required_bytes = worker.config.required_disk_space_megabytes * MIB
        missing = missing_capabilities()
        if worker.config.d2g.allow_privileged and missing:
            log.warning(
                "d2g: privileged containers cannot run here (bounding set lacks %s)", ", ".join(missing)
            )
        try:
            for container in await docker.names("container", "taskcontainer_"):
                await docker.remove_container(container)
            for network in await docker.names("network", "gw-task-"):
                await docker.remove_network(network)
        except docker.DockerError as e:
            log.warning("d2g: could not sweep stale docker resources: %s", e)

    def is_requested(self, task: TaskRun) -> bool:
        """Never: this feature has no task part."""
        return False

    async def before_claim(self) -> bool:
        """Short of disk space: remove cached images no running task uses, and forget them."""
        if self.cache is None:
            return True
        if await asyncio.to_thread(free_bytes, self._tasks_dir) >= self._required_bytes:
            return True
        removed = set()
        for key, image in self.cache.read().items():
            if images_in_use[image.id] > 0:
                continue
            # By name: untagging the last name deletes the image; an image that a container
            # uses, or that has other names, stays (docker refuses without --force).
            if await docker.remove_image(image.name or image.id) or await docker.image_id(image.id) is None:
                removed.add(key)
        if removed:
            log.info("d2g: removed %d cached docker image(s) to free disk space", len(removed))
            self.cache.drop(removed)
        return True
