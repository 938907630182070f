"""Purge-cache requests: caches an operator asked every worker of this pool to drop.

`purgeCache.purgeRequests(<provisionerId>/<workerType>, since=<last query - 5 min>)` with the
worker's credentials, before each task that mounts writable caches and at most every 6 hours
otherwise (upstream's rule). A request already applied is not applied again (the seed purged
every cache created within 5 minutes of an old request on every query for 5 minutes). A failure
only warns: the task runs with the caches it has.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from generic_worker.mounts.logs import MountLog
from generic_worker.tc import TC_ERRORS
from generic_worker.tc.failures import describe
from generic_worker.timefmt import now, parse_tc, to_tc

QUERY_INTERVAL = timedelta(hours=6)
"""How often to ask when tasks mount no writable cache."""

SINCE_SLACK = timedelta(minutes=5)
"""`since` is this long before the last query (requests made meanwhile, clock skew)."""


_ERRORS: tuple[type[BaseException], ...] = (*TC_ERRORS, KeyError, TypeError, ValueError)
"""A failed call, or an answer not shaped as documented."""


class PurgeRequests:
    """Remembers when it last asked and which requests it applied."""

    def __init__(self, client: Callable[[], Any], worker_pool: str) -> None:
        self._client = client
        self.worker_pool = worker_pool
        self.last_query: datetime | None = None
        self._applied: dict[str, datetime] = {}

    def due(self, has_writable_caches: bool) -> bool:
        """Whether to ask now (always for tasks with caches; otherwise every 6 hours)."""
        return has_writable_caches or self.last_query is None or now() - self.last_query >= QUERY_INTERVAL

    async def fetch(self, tlog: MountLog) -> list[tuple[str, datetime]]:
        """New `(cacheName, before)` requests; `[]` (with the seed's warning) if the service failed."""
        since = None if self.last_query is None else self.last_query - SINCE_SLACK
        self.last_query = now()
        try:
            if since is None:
                answer = await self._client().purgeRequests(self.worker_pool)
            else:
                answer = await self._client().purgeRequests(self.worker_pool, query={"since": to_tc(since)})
            requests = [(str(r["cacheName"]), parse_tc(r["before"])) for r in answer.get("requests", [])]
        except _ERRORS as e:
            tlog.warn("[mounts] Could not reach purgecache service to see if caches need purging:")
            tlog.warn(f"[mounts] {describe(e)}")
            return []
        fresh = [(name, before) for name, before in requests if self._applied.get(name) != before]
        for name, before in fresh:
            self._applied[name] = before
        return fresh
