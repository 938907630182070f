"""The worker's Prometheus metrics, in one registry of their own (plus process and Python metrics).

One registry per process: a worker is one process. Counters only grow, so a scrape after some
tasks shows what this process has done since it started. Names follow Prometheus conventions:
`generic_worker_` prefix, base units (seconds, bytes), `_total` on counters.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

disable_created_metrics()  # type: ignore[no-untyped-call] # no `_created` series beside every counter and histogram
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
_START_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

TASKS_CLAIMED = Counter("generic_worker_tasks_claimed", "Task runs claimed from the queue", registry=REGISTRY)
TASKS_RESOLVED = Counter(
    "generic_worker_tasks_resolved",
    "Task runs ended, by resolution (state completed/failed/exception, reason as the queue shows it)",
    ["state", "reason"],
    registry=REGISTRY,
)
TASK_DURATION = Histogram(
    "generic_worker_task_duration_seconds",
    "From claim to resolution",
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
CLAIM_TO_FIRST_COMMAND = Histogram(
    "generic_worker_claim_to_first_command_seconds",
    "From claim to the start of the task's first command (mounts, proxy and live log included)",
    buckets=_START_BUCKETS,
    registry=REGISTRY,
)
CLAIM_ERRORS = Counter("generic_worker_claim_errors", "claimWork calls that failed", registry=REGISTRY)
UPLOADED_BYTES = Counter(
    "generic_worker_uploaded_bytes", "Artifact bytes uploaded (successful PUTs)", registry=REGISTRY
)
DOWNLOADED_BYTES = Counter(
    "generic_worker_downloaded_bytes", "Bytes downloaded for mounts", registry=REGISTRY
)
CACHE_HITS = Counter(
    "generic_worker_cache_hits",
    "Mounts served from a cache (kind: directory = writable caches, file = downloads)",
    ["kind"],
    registry=REGISTRY,
)
CACHE_MISSES = Counter(
    "generic_worker_cache_misses",
    "Mounts that had to create a cache or download (kind: directory, file)",
    ["kind"],
    registry=REGISTRY,
)
CACHE_EVICTIONS = Counter(
    "generic_worker_cache_evictions",
    "Caches and downloads deleted to free disk space (kind: directory, file)",
    ["kind"],
    registry=REGISTRY,
)
FREE_DISK = Gauge(
    "generic_worker_free_disk_bytes",
    "Free space where the worker keeps task directories, caches and downloads (at scrape time)",
    ["directory"],
    registry=REGISTRY,
)
RUNNING_TASKS = Gauge("generic_worker_running_tasks", "Task runs in progress", registry=REGISTRY)
LIVE_LOG_READERS = Gauge(
    "generic_worker_live_log_readers", "Clients reading a live log right now", registry=REGISTRY
)
WORKER_INFO = Info(
    "generic_worker",
    "This worker: version, engine and worker pool",
    registry=REGISTRY,
)

for _kind in ("directory", "file"):  # so that every series shows 0 before its first event
    CACHE_HITS.labels(_kind)
    CACHE_MISSES.labels(_kind)
    CACHE_EVICTIONS.labels(_kind)


def task_resolved(resolution: str, seconds: float) -> None:
    """Count one ended run: `resolution` is `state/reason` (e.g. `exception/canceled`) or free text."""
    state, _, reason = resolution.partition("/")
    if state not in ("completed", "failed", "exception"):
        state, reason = "unknown", "unknown"
    TASKS_RESOLVED.labels(state, reason or state).inc()
    TASK_DURATION.observe(max(seconds, 0.0))
