"""The claim of one task run: a guarded state machine that owns reclaiming and reporting.

It reclaims before `takenUntil` (never giving up while the task runs), swaps in the fresh task
credentials each time, polls the task status so that a cancellation or a lost claim is noticed
within seconds (upstream only noticed at the next reclaim, up to ~17 min later), and reports
the resolution. A run that was resolved by someone else (cancelled, deadline exceeded, claim
expired) is "lost": the task is killed and nothing more is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any

from generic_worker.errors import ExceptionReason, TaskError
from generic_worker.tc import TC_ERRORS, Credentials, ServiceFactory, http_status
from generic_worker.tc.failures import describe
from generic_worker.timefmt import now, parse_tc

log = logging.getLogger(__name__)

MAX_RECLAIM_MARGIN = 180.0
"""Reclaim at most this long before `takenUntil` (upstream: 3 minutes)."""


class RunState(Enum):
    """Where a claimed run is, as this worker sees it."""

    CLAIMED = "claimed"
    RECLAIMED = "reclaimed"
    RESOLVED = "resolved"  # we reported a resolution
    LOST = "lost"  # resolved by someone else, or the claim expired


class IllegalTransition(Exception):
    """A report or reclaim was attempted from a state that does not allow it."""


class StatusManager:
    """Reclaims, watches and resolves one claimed task run."""

    def __init__(
        self,
        services: ServiceFactory,
        claim: dict[str, Any],
        *,
        poll_interval: float,
        on_lost: Callable[[str], None],
    ) -> None:
        self._services = services
        self.task_id: str = claim["status"]["taskId"]
        self.run_id: int = int(claim["runId"])
        self.credentials: Credentials = dict(claim["credentials"])  # type: ignore[assignment]
        self.taken_until: datetime = parse_tc(claim["takenUntil"])
        self.state = RunState.CLAIMED
        self.lost_reason: str | None = None
        self._poll_interval = poll_interval
        self._on_lost = on_lost
        self._tasks: list[asyncio.Task[None]] = []
        self._reclaim_listeners: list[Callable[[Credentials], None]] = []

    def queue(self) -> Any:
        """A queue client with the current task credentials (they change on every reclaim)."""
        return self._services.queue(self.credentials)

    def add_reclaim_listener(self, listener: Callable[[Credentials], None]) -> None:
        """Call `listener(new_credentials)` after every successful reclaim (it must not raise).

        For features that hand the task credentials to someone else, or log their refresh
        (the Taskcluster proxy reads `credentials` per request and only logs the change).
        """
        self._reclaim_listeners.append(listener)

    def remove_reclaim_listener(self, listener: Callable[[Credentials], None]) -> None:
        """Stop calling `listener` (no error if it was not registered)."""
        with contextlib.suppress(ValueError):
            self._reclaim_listeners.remove(listener)

    def start(self) -> None:
        """Start reclaiming and status polling in the background."""
        self._tasks = [
            asyncio.create_task(self._reclaim_loop(), name=f"reclaim {self.task_id}/{self.run_id}"),
            asyncio.create_task(self._poll_loop(), name=f"status {self.task_id}/{self.run_id}"),
        ]

    async def stop_background(self) -> None:
        """Stop reclaiming and polling (before reporting, so no reclaim races the report)."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []

    def _lose(self, reason: str) -> None:
        if self.state in (RunState.LOST, RunState.RESOLVED):
            return
        self.state = RunState.LOST
        self.lost_reason = reason
        log.info("task %s run %s: claim lost (%s); killing the task", self.task_id, self.run_id, reason)
        self._on_lost(reason)

    def _next_reclaim_delay(self) -> float:
        remaining = (self.taken_until - now()).total_seconds()
        margin = min(MAX_RECLAIM_MARGIN, remaining / 3)
        return max(remaining - margin, 0.2)

    async def _reclaim_loop(self) -> None:
        while self.state in (RunState.CLAIMED, RunState.RECLAIMED):
            await asyncio.sleep(self._next_reclaim_delay())
            await self._reclaim_once()

    async def _reclaim_once(self) -> None:
        attempt = 0
        while self.state in (RunState.CLAIMED, RunState.RECLAIMED):
            try:
                response = await self.queue().reclaimTask(self.task_id, str(self.run_id))
            except TC_ERRORS as e:
                status = http_status(e)
                if status is not None and 400 <= status < 500:
                    self._lose(await self.describe_resolution(f"reclaim refused ({describe(e)})"))
                    return
                attempt += 1
                if now() >= self.taken_until:
                    self._lose(f"could not reclaim before takenUntil ({describe(e)})")
                    return
                log.warning("task %s: reclaim attempt %d failed: %s", self.task_id, attempt, describe(e))
                await asyncio.sleep(min(2.0**attempt * 0.1, 10.0))
                continue
            self.credentials = dict(response["credentials"])  # type: ignore[assignment]
            self.taken_until = parse_tc(response["takenUntil"])
            self.state = RunState.RECLAIMED
            log.info(
                "task %s run %s reclaimed until %s",
                self.task_id,
                self.run_id,
                response["takenUntil"],
            )
            for listener in list(self._reclaim_listeners):
                listener(self.credentials)
            return

    async def _poll_loop(self) -> None:
        while self.state in (RunState.CLAIMED, RunState.RECLAIMED):
            await asyncio.sleep(self._poll_interval)
            run = await self._fetch_run()
            if run is not None and run.get("state") != "running":
                self._lose(_run_text(run))

    async def _fetch_run(self) -> dict[str, Any] | None:
        try:
            status = (await self._services.queue(max_retries=2).status(self.task_id))["status"]
        except TC_ERRORS as e:
            log.debug("task %s: status poll failed: %s", self.task_id, describe(e))
            return None
        runs = status.get("runs", [])
        return runs[self.run_id] if self.run_id < len(runs) else None

    async def describe_resolution(self, fallback: str) -> str:
        """How the queue says this run ended, e.g. `exception/canceled`; `fallback` if unknown."""
        run = await self._fetch_run()
        return _run_text(run) if run is not None and run.get("state") != "running" else fallback

    async def report(self, error: TaskError | None) -> None:
        """Report the resolution decided by the first error (None: completed).

        A report refused because the run is already resolved (cancelled, deadline) is logged,
        not raised: the worker goes on with the next task. A report the queue refuses as
        invalid (400) never leaves the run `running` until its claim expires (TARGET §11): a
        refused `superseded` (today's queue no longer lists that reason, TARGET §10) resolves
        `completed`, any other refusal `exception/internal-error`.
        """
        if self.state not in (RunState.CLAIMED, RunState.RECLAIMED):
            raise IllegalTransition(
                f"cannot report task {self.task_id} run {self.run_id} from state {self.state.value}"
            )
        await self.stop_background()
        try:
            await self._send(error)
        except TC_ERRORS as e:
            if http_status(e) != 400 or not await self._report_instead(error, e):
                await self._give_up(e)
            return
        self.state = RunState.RESOLVED

    async def _send(self, error: TaskError | None) -> None:
        queue = self.queue()
        args = (self.task_id, str(self.run_id))
        if error is None:
            await queue.reportCompleted(*args)
        elif error.is_failure:
            await queue.reportFailed(*args)
        else:
            await queue.reportException(*args, {"reason": str(error.reason)})

    async def _report_instead(self, error: TaskError | None, refusal: BaseException) -> bool:
        """After a 400: report the fallback resolution; True when the queue took it."""
        if error is not None and error.reason is ExceptionReason.SUPERSEDED:
            fallback: TaskError | None = None
        elif error is not None and error.reason is ExceptionReason.INTERNAL_ERROR:
            return False  # nothing left to fall back to
        else:
            fallback = TaskError.internal_error("the queue refused the report")
        wanted = "completed/completed" if fallback is None else fallback.resolution
        log.warning(
            "task %s run %s: the queue refused %s as invalid (%s); resolving %s instead",
            self.task_id,
            self.run_id,
            "completed/completed" if error is None else error.resolution,
            describe(refusal),
            wanted,
        )
        try:
            await self._send(fallback)
        except TC_ERRORS as e:
            await self._give_up(e)
            return True
        self.state = RunState.RESOLVED
        return True

    async def _give_up(self, e: BaseException) -> None:
        self.state = RunState.LOST
        self.lost_reason = await self.describe_resolution(describe(e))
        log.warning(
            "task %s run %s: could not report resolution: %s",
            self.task_id,
            self.run_id,
            self.lost_reason,
        )


def _run_text(run: dict[str, Any]) -> str:
    state = run.get("state", "unknown")
    reason = run.get("reasonResolved")
    return f"{state}/{reason}" if reason else str(state)
