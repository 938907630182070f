"""The queue's state transitions, each one SQLite transaction on the database thread.

Every function here takes the connection and runs inside `Database.run`, so a transition and
all its consequences (a retry run, dependents becoming pending, index entries for `index.*`
routes) commit together or not at all. `Effects` tells the event loop what to announce after
the commit: which task queues gained pending work.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from tclocal.core.errors import APIError
from tclocal.core.timestamps import to_iso
from tclocal.index import store as index_store
from tclocal.queue.model import MAX_RUNS, RESOLVED, TaskRecord, priority_rank

RETRY_REASONS = {"worker-shutdown": "retry", "intermittent-task": "task-retry", "claim-expired": "retry"}


@dataclass
class Effects:
    """What a committed transition changed that others must hear about."""

    pending_queues: set[str] = field(default_factory=set)


def load(conn: sqlite3.Connection, task_id: str) -> TaskRecord | None:
    """The task, or None."""
    row = conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    return TaskRecord.from_row(row) if row else None


def load_or_404(conn: sqlite3.Connection, task_id: str) -> TaskRecord:
    """The task, or ResourceNotFound."""
    task = load(conn, task_id)
    if task is None:
        raise APIError(
            "ResourceNotFound",
            f"`{task_id}` does not correspond to a task that exists.\n"
            "Are you sure this task has already been submitted?",
        )
    return task


def save(conn: sqlite3.Connection, task: TaskRecord) -> None:
    """Write back runs, retries and the indexed state columns."""
    conn.execute(
        "UPDATE tasks SET runs = ?, retries_left = ?, state = ?, taken_until = ? WHERE task_id = ?",
        (json.dumps(task.runs), task.retries_left, task.state, task.taken_until(), task.task_id),
    )


def _schedule(task: TaskRecord, current: float, effects: Effects) -> None:
    task.add_run("scheduled", current)
    effects.pending_queues.add(task.queue)


def _is_blocked(conn: sqlite3.Connection, task_id: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM dependencies WHERE dependent_task_id = ? AND satisfied = 0 LIMIT 1", (task_id,)
    ).fetchone()
    return row is not None


def _check_dependencies(
    conn: sqlite3.Connection, task_id: str, definition: dict[str, Any]
) -> tuple[list[tuple[str, bool]], APIError | None]:
    """Return (required taskId, already satisfied) pairs and upstream's 400, if any.

    The error is for a dependency that is missing or expires before this task's deadline.
    """
    deadline = definition["deadline"]
    missing, expiring, result = [], [], []
    for dep in definition["dependencies"]:
        required = None if dep == task_id else load(conn, dep)
        if required is None and dep != task_id:
            missing.append(dep)
        elif required is not None and required.definition["expires"] < deadline:
            expiring.append(dep)
        state = required.state if required is not None else None
        done = state == "completed" or (definition["requires"] == "all-resolved" and state in RESOLVED)
        result.append((dep, done))
    if not missing and not expiring:
        return result, None
    message = ""
    if missing:
        listed = "\n".join(f" * {dep}" for dep in missing)
        message += (
            f"`task.dependencies` references non-existing tasks: \n{listed}\n"
            "All taskIds in `task.dependencies` **must** exist\nbefore the task is created.\n"
        )
    if expiring:
        listed = "\n".join(f" * {dep}," for dep in expiring)
        message += (
            "`task.dependencies` references tasks that expires\nbefore `task.deadline` this is not "
            f"allowed, see tasks: \n{listed}\n"
            "All taskIds in `task.dependencies` **must** have\n`task.expires` greater than the "
            "`deadline` for this task.\n"
        )
    error = APIError(
        "InputError", message, missingTaskDependencies=missing, expiringTaskDependencies=expiring
    )
    return result, error


def insert_task(
    conn: sqlite3.Connection, task_id: str, definition: dict[str, Any], current: float, effects: Effects
) -> tuple[TaskRecord, APIError | None]:
    """Handle `createTask`: idempotent for an identical definition, 409 for a different one.

    As upstream, a task whose dependencies are missing (or expire before its deadline) is
    still stored, unscheduled for good (it resolves at its deadline), and the error is
    returned for the caller to answer once the transaction has committed.
    """
    existing = load(conn, task_id)
    if existing is not None:
        if existing.definition != definition:
            raise APIError(
                "RequestConflict",
                f"taskId `{task_id}` already used by another task.\n"
                "This could be the result of faulty idempotency!",
            )
        # As upstream, a retry checks the dependencies again (and answers 400 while one is missing).
        return existing, _check_dependencies(conn, task_id, definition)[1]
    group = conn.execute(
        "SELECT scheduler_id FROM task_groups WHERE task_group_id = ?", (definition["taskGroupId"],)
    ).fetchone()
    if group is not None and group[0] != definition["schedulerId"]:
        raise APIError(
            "RequestConflict",
            f"Task group `{definition['taskGroupId']}` contains tasks with a schedulerId other "
            f"than `{definition['schedulerId']}`. All tasks in the same task-group must have the "
            "same schedulerId.",
        )
    dependencies, dependency_error = _check_dependencies(conn, task_id, definition)
    task = TaskRecord(task_id, definition, [], definition["retries"])
    conn.execute(
        "INSERT INTO task_groups (task_group_id, scheduler_id, expires) VALUES (?, ?, ?) "
        "ON CONFLICT (task_group_id) DO UPDATE SET expires = MAX(expires, excluded.expires)",
        (definition["taskGroupId"], definition["schedulerId"], task.expires),
    )
    conn.execute(
        "INSERT INTO tasks (task_id, task_queue_id, scheduler_id, task_group_id, project_id, "
        "priority, deadline, expires, retries_left, state, taken_until, definition, runs) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "'unscheduled', NULL, ?, '[]')",
        (
            task_id,
            task.queue,
            definition["schedulerId"],
            definition["taskGroupId"],
            definition["projectId"],
            priority_rank(definition["priority"]),
            task.deadline,
            task.expires,
            task.retries_left,
            json.dumps(definition),
        ),
    )
    conn.executemany(
        "INSERT INTO dependencies (required_task_id, dependent_task_id, requires, satisfied) "
        "VALUES (?, ?, ?, ?)",
        [(dep, task_id, definition["requires"], int(done)) for dep, done in dependencies],
    )
    if dependency_error is None and all(done for _, done in dependencies):
        _schedule(task, current, effects)
        save(conn, task)
    return task, dependency_error


def claim(
    conn: sqlite3.Connection,
    queue: str,
    count: int,
    worker: tuple[str, str],
    current: float,
    taken_until: float,
) -> list[TaskRecord]:
    """Take up to `count` pending tasks of a queue, highest priority and oldest first."""
    rows = conn.execute(
        "SELECT * FROM tasks WHERE task_queue_id = ? AND state = 'pending' AND deadline > ? "
        "ORDER BY priority DESC, rowid LIMIT ?",
        (queue, current, count),
    ).fetchall()
    claimed = []
    for row in rows:
        task = TaskRecord.from_row(row)
        run = task.runs[-1]
        run.update(
            state="running",
            workerGroup=worker[0],
            workerId=worker[1],
            takenUntil=to_iso(taken_until),
            started=to_iso(current),
        )
        save(conn, task)
        claimed.append(task)
    return claimed


def _require_open(task: TaskRecord, current: float, action: str) -> None:
    if task.deadline <= current:
        raise APIError(
            "RequestConflict",
            f"Task `{task.task_id}` can't be {action} past its deadline of {task.definition['deadline']}.",
        )


def reclaim(
    conn: sqlite3.Connection, task_id: str, run_id: int, current: float, taken_until: float
) -> TaskRecord:
    """Extend the claim on a running run."""
    task = load_or_404(conn, task_id)
    run = task.run(run_id)
    _require_open(task, current, "reclaimed")
    if run_id != len(task.runs) - 1 or run["state"] != "running":
        raise APIError("RequestConflict", f"Run {run_id} on task `{task_id}` is resolved or not running.")
    run["takenUntil"] = to_iso(taken_until)
    save(conn, task)
    return task


def _task_resolved(conn: sqlite3.Connection, task: TaskRecord, current: float, effects: Effects) -> None:
    """A task reached a final state: unblock dependents and index `index.*` routes."""
    state = task.state
    rows = conn.execute(
        "SELECT dependent_task_id, requires FROM dependencies WHERE required_task_id = ? AND satisfied = 0",
        (task.task_id,),
    ).fetchall()
    for dependent_id, requires in rows:
        if state != "completed" and requires != "all-resolved":
            continue
        conn.execute(
            "UPDATE dependencies SET satisfied = 1 WHERE required_task_id = ? AND dependent_task_id = ?",
            (task.task_id, dependent_id),
        )
        if _is_blocked(conn, dependent_id):
            continue
        dependent = load(conn, dependent_id)
        if dependent is not None and dependent.state == "unscheduled" and dependent.deadline > current:
            _schedule(dependent, current, effects)
            save(conn, dependent)
    if state == "completed":
        index_store.index_completed_task(conn, task.task_id, task.definition)


def resolve(
    conn: sqlite3.Connection,
    task: TaskRecord,
    run: dict[str, Any],
    state: str,
    reason: str,
    current: float,
    effects: Effects,
) -> None:
    """Resolve a run; retry it when the reason allows and retries remain."""
    task.resolve_run(run, state, reason, current)
    retry = RETRY_REASONS.get(reason)
    if retry and task.retries_left > 0:
        task.retries_left -= 1
        task.add_run(retry, current)
        effects.pending_queues.add(task.queue)
    save(conn, task)
    if task.state in RESOLVED:
        _task_resolved(conn, task, current, effects)


def report(
    conn: sqlite3.Connection,
    task_id: str,
    run_id: int,
    state: str,
    reason: str,
    current: float,
    effects: Effects,
) -> TaskRecord:
    """Resolve a run for reportCompleted/Failed/Exception (idempotent if already so resolved)."""
    task = load_or_404(conn, task_id)
    run = task.run(run_id)
    if run["state"] == state and run.get("reasonResolved") == reason:
        return task
    if run["state"] != "running":
        raise APIError("RequestConflict", f"Run {run_id} on task `{task_id}` is resolved or not running.")
    resolve(conn, task, run, state, reason, current, effects)
    return task


def cancel(conn: sqlite3.Connection, task_id: str, current: float, effects: Effects) -> TaskRecord:
    """Handle `cancelTask`: the open run (or a new one) becomes exception/canceled."""
    task = load_or_404(conn, task_id)
    _require_open(task, current, "canceled")
    if task.state == "unscheduled":
        run = task.add_run("exception", current)
    elif task.state in ("pending", "running"):
        run = task.runs[-1]
    else:
        return task
    resolve(conn, task, run, "exception", "canceled", current, effects)
    return task


def rerun(conn: sqlite3.Connection, task_id: str, current: float, effects: Effects) -> TaskRecord:
    """Handle `rerunTask`: a resolved task gets a new pending run."""
    task = load_or_404(conn, task_id)
    _require_open(task, current, "rescheduled")
    if task.state not in RESOLVED:
        return task
    if len(task.runs) >= MAX_RUNS:
        raise APIError("RequestConflict", f"Maximum number of runs reached ({MAX_RUNS}).")
    task.retries_left = task.definition["retries"]
    task.add_run("rerun", current)
    effects.pending_queues.add(task.queue)
    save(conn, task)
    return task


def schedule(conn: sqlite3.Connection, task_id: str, current: float, effects: Effects) -> TaskRecord:
    """Handle `scheduleTask`: an unscheduled task becomes pending, whatever its dependencies."""
    task = load_or_404(conn, task_id)
    _require_open(task, current, "scheduled")
    if task.state == "unscheduled":
        _schedule(task, current, effects)
        save(conn, task)
    return task


def expire_claims(conn: sqlite3.Connection, current: float, effects: Effects) -> int:
    """Resolve runs whose claim ran out as exception/claim-expired (retried while retries remain)."""
    rows = conn.execute(
        "SELECT * FROM tasks WHERE state = 'running' AND taken_until < ?", (current,)
    ).fetchall()
    for row in rows:
        task = TaskRecord.from_row(row)
        resolve(conn, task, task.runs[-1], "exception", "claim-expired", current, effects)
    return len(rows)


def expire_deadlines(conn: sqlite3.Connection, current: float, effects: Effects) -> int:
    """Resolve open tasks past their deadline as exception/deadline-exceeded (never retried)."""
    rows = conn.execute(
        "SELECT * FROM tasks WHERE state IN ('unscheduled', 'pending', 'running') AND deadline <= ?",
        (current,),
    ).fetchall()
    for row in rows:
        task = TaskRecord.from_row(row)
        run = task.add_run("exception", current) if not task.runs else task.runs[-1]
        resolve(conn, task, run, "exception", "deadline-exceeded", current, effects)
    return len(rows)


def next_due(conn: sqlite3.Connection) -> float | None:
    """The earliest takenUntil or deadline the reaper must act on."""
    row = conn.execute(
        "SELECT MIN(t) FROM ("
        "SELECT MIN(taken_until) AS t FROM tasks WHERE state = 'running' "
        "UNION ALL SELECT MIN(deadline) FROM tasks WHERE state IN ('unscheduled', 'pending', 'running'))"
    ).fetchone()
    return float(row[0]) if row and row[0] is not None else None
