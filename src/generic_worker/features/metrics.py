"""Metrics: serves Prometheus metrics on `metricsAddress:metricsPort` (0, the default, = off).

The worker-level part starts the /metrics endpoint and sets `generic_worker_info` (version,
engine, worker pool, worker group and id); the per-task part keeps `generic_worker_running_tasks`
up to date. The other figures are counted where they happen (claims, resolutions, transfers,
caches, live log readers) through `generic_worker.metrics`, whether or not they are served.
"""

from __future__ import annotations

import logging
from pathlib import Path

from generic_worker import __version__, metrics
from generic_worker.engine.feature import FeatureBase, TaskFeature, TaskFeatureBase
from generic_worker.engine.taskrun import TaskRun
from generic_worker.engine.worker import WorkerContext
from generic_worker.errors import ExecutionErrors

log = logging.getLogger(__name__)


class MetricsFeature(FeatureBase):
    """The Prometheus endpoint and the running-tasks gauge."""

    name = "Metrics"

    def __init__(self) -> None:
        self.server: metrics.MetricsServer | None = None

    async def initialise(self, worker: WorkerContext) -> None:
        """Describe this worker, and start the endpoint when `metricsPort` is set."""
        c = worker.config
        metrics.WORKER_INFO.info(
            {
                "version": __version__,
                "engine": "multiuser" if c.multiuser else "insecure",
                "worker_pool_id": c.task_queue_id,
                "worker_group": c.worker_group,
                "worker_id": c.worker_id,
            }
        )
        if not c.metrics_port:
            return
        dirs = {"tasks": Path(c.tasks_dir), "caches": Path(c.caches_dir), "downloads": Path(c.downloads_dir)}
        self.server = metrics.MetricsServer(c.metrics_address, c.metrics_port, dirs)
        await self.server.start()
        log.info("Serving Prometheus metrics on http://%s:%d/metrics", c.metrics_address, self.server.port)

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """The per-task part: counts the run as running while it is."""
        return _Running()

    async def close(self) -> None:
        """Stop the endpoint."""
        if self.server is not None:
            await self.server.stop()


class _Running(TaskFeatureBase):
    async def start(self) -> None:
        metrics.RUNNING_TASKS.inc()

    async def stop(self, errors: ExecutionErrors) -> None:
        metrics.RUNNING_TASKS.dec()
