"""Queue endpoints workers call: claimWork (long-poll), reclaimTask and the three reports."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from tclocal.context import Context
from tclocal.core.endpoints import Call, Endpoint, Reply
from tclocal.core.timestamps import now, to_iso
from tclocal.queue import store as queue_store
from tclocal.queue.model import TaskRecord
from tclocal.queue.schemas import CLAIM_WORK, TASK_EXCEPTION
from tclocal.queue.store import Effects

RUN = "/task/<taskId>/runs/<runId>"


class QueueWorker:
    """Handlers for the worker interface of the queue."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _credentials(self, task: TaskRecord, run: dict[str, Any], taken_until: float) -> dict[str, str]:
        """Temporary credentials for one run: the task's scopes plus what the worker needs for it."""
        task_id, run_id = task.task_id, run["runId"]
        name = f"task-client/{task_id}/{run_id}/on/{run['workerGroup']}/{run['workerId']}"
        scopes = [
            f"queue:reclaim-task:{task_id}/{run_id}",
            f"queue:resolve-task:{task_id}/{run_id}",
            f"queue:create-artifact:{task_id}/{run_id}",
            *task.definition["scopes"],
        ]
        return self.ctx.temporary_credentials(name, scopes, taken_until)

    def _claim_reply(self, task: TaskRecord, taken_until: float, with_task: bool) -> dict[str, Any]:
        run = task.runs[-1]
        reply: dict[str, Any] = {
            "status": task.status(),
            "runId": run["runId"],
            "workerGroup": run["workerGroup"],
            "workerId": run["workerId"],
            "takenUntil": to_iso(taken_until),
            "credentials": self._credentials(task, run, taken_until),
        }
        if with_task:
            reply["task"] = task.definition
        return reply

    async def claim_work(self, call: Call) -> Reply:
        """Handle `claimWork`: return pending tasks at once, or wait (up to claim_work_wait) for some."""
        queue = call.params["taskQueueId"]
        group, worker, count = call.body["workerGroup"], call.body["workerId"], call.body["tasks"]
        call.authorize(taskQueueId=queue, workerGroup=group, workerId=worker)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.ctx.settings.claim_work_wait
        while True:
            # Register before looking, so work committed in between still wakes us.
            waiter = self.ctx.notifier.register(queue)
            try:
                current = now()
                taken_until = current + self.ctx.settings.claim_timeout
                claimed: list[TaskRecord] = await self.ctx.db.run(
                    functools.partial(
                        queue_store.claim,
                        queue=queue,
                        count=count,
                        worker=(group, worker),
                        current=current,
                        taken_until=taken_until,
                    )
                )
                remaining = give_up - loop.time()
                if claimed or remaining <= 0 or self.ctx.notifier.closing:
                    break
                await asyncio.wait([waiter], timeout=remaining)
            finally:
                self.ctx.notifier.unregister(queue, waiter)
        if claimed:
            self.ctx.poke_reaper(taken_until)
        return {"tasks": [self._claim_reply(t, taken_until, True) for t in claimed]}

    async def reclaim_task(self, call: Call) -> Reply:
        """Handle `reclaimTask`: extend takenUntil and issue fresh credentials."""
        task_id, run_id = call.params["taskId"], int(call.params["runId"])
        current = now()
        taken_until = current + self.ctx.settings.claim_timeout
        task = await self.ctx.db.run(lambda c: queue_store.reclaim(c, task_id, run_id, current, taken_until))
        self.ctx.poke_reaper(taken_until)
        return self._claim_reply(task, taken_until, False)

    async def _report(self, call: Call, state: str, reason: str) -> Reply:
        task_id, run_id = call.params["taskId"], int(call.params["runId"])
        current = now()
        effects = Effects()
        task = await self.ctx.db.run(
            lambda c: queue_store.report(c, task_id, run_id, state, reason, current, effects)
        )
        self.ctx.notifier.notify(effects.pending_queues)
        return {"status": task.status()}

    async def report_completed(self, call: Call) -> Reply:
        """Handle `reportCompleted`."""
        return await self._report(call, "completed", "completed")

    async def report_failed(self, call: Call) -> Reply:
        """Handle `reportFailed`."""
        return await self._report(call, "failed", "failed")

    async def report_exception(self, call: Call) -> Reply:
        """Handle `reportException`; worker-shutdown and intermittent-task retry if retries remain."""
        return await self._report(call, "exception", call.body["reason"])

    def endpoints(self) -> list[Endpoint]:
        """The endpoint table."""
        resolve = "queue:resolve-task:<taskId>/<runId>"
        return [
            Endpoint(
                "claimWork",
                "POST",
                "/claim-work/<*taskQueueId>",
                self.claim_work,
                {"AllOf": ["queue:claim-work:<taskQueueId>", "queue:worker-id:<workerGroup>/<workerId>"]},
                CLAIM_WORK,
            ),
            Endpoint(
                "reclaimTask",
                "POST",
                f"{RUN}/reclaim",
                self.reclaim_task,
                "queue:reclaim-task:<taskId>/<runId>",
            ),
            Endpoint("reportCompleted", "POST", f"{RUN}/completed", self.report_completed, resolve),
            Endpoint("reportFailed", "POST", f"{RUN}/failed", self.report_failed, resolve),
            Endpoint(
                "reportException",
                "POST",
                f"{RUN}/exception",
                self.report_exception,
                resolve,
                TASK_EXCEPTION,
            ),
        ]
