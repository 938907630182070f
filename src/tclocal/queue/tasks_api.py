"""Queue endpoints for tasks: create, inspect, schedule, rerun, cancel, task groups, counts."""

from __future__ import annotations

import sqlite3
from typing import Any

from tclocal.context import Context
from tclocal.core.endpoints import Call, Endpoint, Reply, page_args
from tclocal.core.errors import APIError
from tclocal.core.timestamps import now, to_iso
from tclocal.core.validation import SLUGID, Validator, obj
from tclocal.queue import store as queue_store
from tclocal.queue.model import TaskRecord, finish_definition, priorities_at_or_above, split_queue_ids
from tclocal.queue.schemas import CREATE_TASK
from tclocal.queue.store import Effects

TASKS_REQUEST = Validator(
    obj(["taskIds"], taskIds={"type": "array", "items": {"type": "string", "pattern": SLUGID}})
)

CREATE_TASK_SCOPES = {
    "AllOf": [
        {"for": "scope", "in": "scopes", "each": "<scope>"},
        {"for": "route", "in": "routes", "each": "queue:route:<route>"},
        "queue:create-task:project:<projectId>",
        "queue:scheduler-id:<schedulerId>",
        {
            "AnyOf": [
                {
                    "for": "priority",
                    "in": "priorities",
                    "each": "queue:create-task:<priority>:<provisionerId>/<workerType>",
                }
            ]
        },
    ]
}


def _group_action(action: str) -> dict[str, Any]:
    """The AnyOf scope template shared by scheduleTask, rerunTask and cancelTask."""
    return {
        "AnyOf": [
            f"queue:{action}:<schedulerId>/<taskGroupId>/<taskId>",
            f"queue:{action}-in-project:<projectId>",
            {"AllOf": [f"queue:{action}", "assume:scheduler-id:<schedulerId>/<taskGroupId>"]},
        ]
    }


def _task_params(task: TaskRecord) -> dict[str, Any]:
    d = task.definition
    return {
        "taskId": task.task_id,
        "schedulerId": d["schedulerId"],
        "taskGroupId": d["taskGroupId"],
        "projectId": d["projectId"],
    }


class QueueTasks:
    """Handlers for the task-level queue endpoints."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def _load(self, task_id: str) -> TaskRecord:
        return await self.ctx.db.run(lambda c: queue_store.load_or_404(c, task_id))

    async def _transition(self, fn: Any) -> TaskRecord:
        """Run a queue_store transition and announce what it changed."""
        effects = Effects()
        task: TaskRecord = await self.ctx.db.run(lambda c: fn(c, effects))
        self.ctx.notifier.notify(effects.pending_queues)
        return task

    async def create_task(self, call: Call) -> Reply:
        """Handle `createTask`: idempotent for identical definitions."""
        task_id = call.params["taskId"]
        definition = split_queue_ids(call.body)
        call.authorize(
            taskId=task_id,
            priorities=priorities_at_or_above(definition["priority"]),
            routes=definition["routes"],
            scopes=definition["scopes"],
            schedulerId=definition["schedulerId"],
            projectId=definition["projectId"],
            taskGroupId=definition.get("taskGroupId", task_id),
            provisionerId=definition["provisionerId"],
            workerType=definition["workerType"],
            taskQueueId=definition["taskQueueId"],
        )
        current = now()
        definition = finish_definition(task_id, definition, current)
        effects = Effects()
        task, error = await self.ctx.db.run(
            lambda c: queue_store.insert_task(c, task_id, definition, current, effects)
        )
        self.ctx.notifier.notify(effects.pending_queues)
        self.ctx.poke_reaper(task.deadline)
        if error is not None:
            raise error  # the task is stored, unscheduled: upstream's answer and state
        return {"status": task.status()}

    async def task(self, call: Call) -> Reply:
        """Handle `task`: the definition."""
        return (await self._load(call.params["taskId"])).definition

    async def status(self, call: Call) -> Reply:
        """Handle `status`: the status structure."""
        return {"status": (await self._load(call.params["taskId"])).status()}

    async def _act(self, call: Call, fn: Any) -> Reply:
        task_id = call.params["taskId"]
        task = await self._load(task_id)
        call.authorize(**_task_params(task))
        current = now()
        task = await self._transition(lambda c, e: fn(c, task_id, current, e))
        return {"status": task.status()}

    async def schedule_task(self, call: Call) -> Reply:
        """Handle `scheduleTask`."""
        return await self._act(call, queue_store.schedule)

    async def rerun_task(self, call: Call) -> Reply:
        """Handle `rerunTask`."""
        return await self._act(call, queue_store.rerun)

    async def cancel_task(self, call: Call) -> Reply:
        """Handle `cancelTask`."""
        return await self._act(call, queue_store.cancel)

    async def list_task_group(self, call: Call) -> Reply:
        """Handle `listTaskGroup`: the group's metadata and `{status, task}` of each member.

        Members are ordered by taskId, as upstream orders them (so that pages never overlap);
        the continuation token is the last taskId of the page.
        """
        group_id = call.params["taskGroupId"]
        after, limit = page_args(call)

        def read(conn: sqlite3.Connection) -> tuple[Any, list[TaskRecord]]:
            group = conn.execute("SELECT * FROM task_groups WHERE task_group_id = ?", (group_id,)).fetchone()
            rows = conn.execute(
                "SELECT * FROM tasks WHERE task_group_id = ? AND task_id > ? ORDER BY task_id LIMIT ?",
                (group_id, after or "", limit + 1),
            ).fetchall()
            return group, [TaskRecord.from_row(r) for r in rows]

        group, rows = await self.ctx.db.run(read)
        if group is None:
            raise APIError("ResourceNotFound", f"No task-group with taskGroupId: `{group_id}`")
        result: dict[str, Any] = {
            **_task_group(group),
            "tasks": [{"status": t.status(), "task": t.definition} for t in rows[:limit]],
        }
        if len(rows) > limit:
            result["continuationToken"] = rows[limit - 1].task_id
        return result

    async def get_task_group(self, call: Call) -> Reply:
        """Handle `getTaskGroup` (tc-local never seals a group, so `sealed` is never present)."""
        group_id = call.params["taskGroupId"]
        row = await self.ctx.db.run(
            lambda c: c.execute("SELECT * FROM task_groups WHERE task_group_id = ?", (group_id,)).fetchone()
        )
        if row is None:
            raise APIError("ResourceNotFound", f"No task-group with taskGroupId: `{group_id}`")
        return _task_group(row)

    async def list_dependent_tasks(self, call: Call) -> Reply:
        """Handle `listDependentTasks`."""
        task_id = call.params["taskId"]
        after, limit = page_args(call)

        def read(conn: sqlite3.Connection) -> list[TaskRecord]:
            queue_store.load_or_404(conn, task_id)
            rows = conn.execute(
                "SELECT t.* FROM dependencies d JOIN tasks t ON t.task_id = d.dependent_task_id "
                "WHERE d.required_task_id = ? AND t.task_id > ? ORDER BY t.task_id LIMIT ?",
                (task_id, after, limit + 1),
            ).fetchall()
            return [TaskRecord.from_row(r) for r in rows]

        tasks = await self.ctx.db.run(read)
        result: dict[str, Any] = {
            "taskId": task_id,
            "tasks": [{"status": t.status(), "task": t.definition} for t in tasks[:limit]],
        }
        if len(tasks) > limit:
            result["continuationToken"] = tasks[limit - 1].task_id
        return result

    async def _many(self, call: Call) -> list[TaskRecord]:
        ids: list[str] = call.body["taskIds"]
        call.authorize(taskIds=ids)
        placeholders = ",".join("?" * len(ids))
        rows = await self.ctx.db.run(
            lambda c: c.execute(f"SELECT * FROM tasks WHERE task_id IN ({placeholders})", ids).fetchall()
        )
        found = {r["task_id"]: TaskRecord.from_row(r) for r in rows}
        return [found[i] for i in ids if i in found]

    async def tasks(self, call: Call) -> Reply:
        """Handle `tasks`: several definitions at once."""
        return {"tasks": [{"taskId": t.task_id, "task": t.definition} for t in await self._many(call)]}

    async def statuses(self, call: Call) -> Reply:
        """Handle `statuses`: several status structures at once."""
        found = await self._many(call)
        return {"statuses": [{"taskId": t.task_id, "status": t.status()} for t in found]}

    async def _counts(self, queue: str) -> dict[str, Any]:
        rows = await self.ctx.db.run(
            lambda c: c.execute(
                "SELECT state, COUNT(*) FROM tasks WHERE task_queue_id = ? "
                "AND state IN ('pending', 'running') GROUP BY state",
                (queue,),
            ).fetchall()
        )
        counts = {r[0]: r[1] for r in rows}
        provisioner, _, worker_type = queue.partition("/")
        return {
            "provisionerId": provisioner,
            "workerType": worker_type,
            "taskQueueId": queue,
            "pendingTasks": counts.get("pending", 0),
            "claimedTasks": counts.get("running", 0),
        }

    async def pending_tasks(self, call: Call) -> Reply:
        """Handle `pendingTasks`: the number of pending tasks in a queue."""
        counts = await self._counts(call.params["taskQueueId"])
        del counts["claimedTasks"]
        return counts

    async def task_queue_counts(self, call: Call) -> Reply:
        """Handle `taskQueueCounts`: pending and claimed."""
        return await self._counts(call.params["taskQueueId"])

    def _listing_endpoints(self) -> list[Endpoint]:
        page = ("continuationToken", "limit")
        group = "/task-group/<taskGroupId>"
        return [
            Endpoint(
                "listTaskGroup",
                "GET",
                f"{group}/list",
                self.list_task_group,
                "queue:list-task-group:<taskGroupId>",
                query=page,
            ),
            Endpoint(
                "getTaskGroup", "GET", group, self.get_task_group, "queue:list-task-group:<taskGroupId>"
            ),
            Endpoint(
                "listDependentTasks",
                "GET",
                "/task/<taskId>/dependents",
                self.list_dependent_tasks,
                "queue:list-dependent-tasks:<taskId>",
                query=page,
            ),
            Endpoint(
                "tasks",
                "POST",
                "/tasks",
                self.tasks,
                _each_task("queue:get-task:<taskId>"),
                TASKS_REQUEST,
                query=page,
            ),
            Endpoint(
                "statuses",
                "POST",
                "/tasks/status",
                self.statuses,
                _each_task("queue:status:<taskId>"),
                TASKS_REQUEST,
                query=page,
            ),
            Endpoint(
                "pendingTasks",
                "GET",
                "/pending/<*taskQueueId>",
                self.pending_tasks,
                "queue:pending-count:<taskQueueId>",
            ),
            Endpoint(
                "taskQueueCounts",
                "GET",
                "/task-queues/<*taskQueueId>/counts",
                self.task_queue_counts,
                {"AllOf": ["queue:pending-count:<taskQueueId>", "queue:claimed-count:<taskQueueId>"]},
            ),
        ]

    def endpoints(self) -> list[Endpoint]:
        """The endpoint table."""
        t = "/task/<taskId>"
        return [
            Endpoint("task", "GET", t, self.task, "queue:get-task:<taskId>"),
            Endpoint("status", "GET", f"{t}/status", self.status, "queue:status:<taskId>"),
            Endpoint("createTask", "PUT", t, self.create_task, CREATE_TASK_SCOPES, CREATE_TASK),
            Endpoint(
                "scheduleTask", "POST", f"{t}/schedule", self.schedule_task, _group_action("schedule-task")
            ),
            Endpoint("rerunTask", "POST", f"{t}/rerun", self.rerun_task, _group_action("rerun-task")),
            Endpoint("cancelTask", "POST", f"{t}/cancel", self.cancel_task, _group_action("cancel-task")),
            *self._listing_endpoints(),
        ]


def _each_task(scope: str) -> dict[str, Any]:
    """A scope for every taskId in the request body (tasks / statuses)."""
    return {"AllOf": [{"for": "taskId", "in": "taskIds", "each": scope}]}


def _task_group(row: Any) -> dict[str, Any]:
    """A task group as upstream serialises it (`sealed` only once sealed)."""
    return {
        "taskGroupId": row["task_group_id"],
        "schedulerId": row["scheduler_id"],
        "expires": to_iso(row["expires"]),
    }
