"""The reaper: resolves runs whose claim expired and tasks whose deadline passed.

It sleeps until the earliest `takenUntil` or `deadline` in the database (at most
`reaper_interval`), and is poked awake when a new, earlier due time appears (a short-deadline
task, a claim under a short claim timeout), so expiry happens on time without polling fast.
Every `expiry_interval` (and at start) it also deletes expired data (see `expiry`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3

from tclocal import expiry
from tclocal.context import Context
from tclocal.core.timestamps import now
from tclocal.queue import store as queue_store
from tclocal.queue.store import Effects

log = logging.getLogger(__name__)
MIN_WAIT = 0.005


class Reaper:
    """Background resolution of expired claims and deadlines."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._wake = asyncio.Event()
        self._planned = math.inf
        self._task: asyncio.Task[None] | None = None
        self._next_expiry = 0.0

    def poke(self, due: float) -> None:
        """Something falls due at `due`; wake up early if that is before the planned wake-up."""
        if due < self._planned:
            self._wake.set()

    async def sweep(self) -> float | None:
        """Resolve everything due now; return the next due time (or None)."""
        current = now()
        effects = Effects()

        def work(conn: sqlite3.Connection) -> float | None:
            queue_store.expire_claims(conn, current, effects)
            queue_store.expire_deadlines(conn, current, effects)
            return queue_store.next_due(conn)

        due = await self.ctx.db.run(work)
        self.ctx.notifier.notify(effects.pending_queues)
        return due

    async def expire_data(self) -> None:
        """Delete expired rows, then the blobs they pointed to."""
        current = now()
        keys = await self.ctx.db.run(lambda conn: expiry.expire(conn, current))
        await self.ctx.auth.expire_clients(current)
        await self.ctx.blobs.delete(keys)

    async def _loop(self) -> None:
        interval = self.ctx.settings.reaper_interval
        while True:
            try:
                due = await self.sweep()
                if now() >= self._next_expiry:
                    self._next_expiry = now() + self.ctx.settings.expiry_interval
                    await self.expire_data()
            except Exception:  # a failed sweep is retried on the next round
                log.exception("reaper sweep failed")
                due = None
            due = self._next_expiry if due is None else min(due, self._next_expiry)
            wait = min(interval, max(MIN_WAIT, due - now()))
            self._planned = now() + wait
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    def start(self) -> None:
        """Start the background loop."""
        self._task = asyncio.create_task(self._loop(), name="tclocal-reaper")

    async def stop(self) -> None:
        """Stop the background loop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
