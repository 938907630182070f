"""Prometheus metrics of the worker: the metric objects (`registry`) and the /metrics endpoint (`server`).

Code anywhere in the worker counts with one call (`metrics.UPLOADED_BYTES.inc(n)`); nothing is
served unless `metricsPort` is set. The names are in `registry` and in docs/operations.md.
"""

from generic_worker.metrics.registry import (
    CACHE_EVICTIONS,
    CACHE_HITS,
    CACHE_MISSES,
    CLAIM_ERRORS,
    CLAIM_TO_FIRST_COMMAND,
    DOWNLOADED_BYTES,
    FREE_DISK,
    LIVE_LOG_READERS,
    REGISTRY,
    RUNNING_TASKS,
    TASK_DURATION,
    TASKS_CLAIMED,
    TASKS_RESOLVED,
    UPLOADED_BYTES,
    WORKER_INFO,
    task_resolved,
)
from generic_worker.metrics.server import MetricsServer

__all__ = [
    "CACHE_EVICTIONS",
    "CACHE_HITS",
    "CACHE_MISSES",
    "CLAIM_ERRORS",
    "CLAIM_TO_FIRST_COMMAND",
    "DOWNLOADED_BYTES",
    "FREE_DISK",
    "LIVE_LOG_READERS",
    "REGISTRY",
    "RUNNING_TASKS",
    "TASKS_CLAIMED",
    "TASKS_RESOLVED",
    "TASK_DURATION",
    "UPLOADED_BYTES",
    "WORKER_INFO",
    "MetricsServer",
    "task_resolved",
]
