"""The queue's task model: definitions as upstream normalises them, runs, and status structures.

A task is its (normalised, immutable) definition plus a list of runs and `retriesLeft`. Its
state is that of its last run (`unscheduled` without runs). Runs are kept in the API's own
shape, so a status structure is a cheap copy.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tclocal.core.errors import APIError
from tclocal.core.timestamps import normalize_iso, parse_iso, to_iso
from tclocal.queue.schemas import PRIORITIES

MAX_RUNS = 50
DRIFT = 15 * 60
MAX_DEADLINE = 5 * 24 * 3600
RESOLVED = ("completed", "failed", "exception")
DEFINITION_KEYS = (
    "provisionerId",
    "workerType",
    "taskQueueId",
    "schedulerId",
    "projectId",
    "taskGroupId",
    "dependencies",
    "requires",
    "routes",
    "priority",
    "retries",
    "created",
    "deadline",
    "expires",
    "scopes",
    "payload",
    "metadata",
    "tags",
    "extra",
)
DEFAULTS: dict[str, Any] = {
    "schedulerId": "-",
    "projectId": "none",
    "dependencies": [],
    "requires": "all-completed",
    "routes": [],
    "priority": "lowest",
    "retries": 5,
    "scopes": [],
    "tags": {},
    "extra": {},
}


def priority_rank(priority: str) -> int:
    """Sort key for claiming: higher is claimed first."""
    return len(PRIORITIES) - PRIORITIES.index(priority)


def priorities_at_or_above(priority: str) -> list[str]:
    """The priority levels a creator may hold a scope for (upstream's `priorities` parameter)."""
    return PRIORITIES[: PRIORITIES.index(priority) + 1]


def split_queue_ids(body: dict[str, Any]) -> dict[str, Any]:
    """Fill taskQueueId from provisionerId/workerType or the reverse, and check they agree."""
    definition = dict(body)
    prov, wtype, queue = body.get("provisionerId"), body.get("workerType"), body.get("taskQueueId")
    if prov and wtype:
        if queue and queue != f"{prov}/{wtype}":
            raise APIError("InputError", 'taskQueueId must match "provisionerId/workerType"')
        definition["taskQueueId"] = f"{prov}/{wtype}"
    elif queue:
        definition["provisionerId"], definition["workerType"] = queue.split("/", 1)
    else:
        raise APIError(
            "InputError", "at least a provisionerId and a workerType or a taskQueueId must be provided"
        )
    for key, value in DEFAULTS.items():
        definition.setdefault(key, json.loads(json.dumps(value)))
    return definition


def _check_times(definition: dict[str, Any], current: float) -> None:
    created, deadline = parse_iso(definition["created"]), parse_iso(definition["deadline"])
    if created < current - DRIFT:
        raise APIError("InputError", "`created` cannot be in the past (max 15min drift)")
    if created > current + DRIFT:
        raise APIError("InputError", "`created` cannot be in the future (max 15min drift)")
    if created > deadline:
        # (sic: upstream's text, the words swapped)
        raise APIError("InputError", "`deadline` cannot be later than `created`")
    if deadline < current:
        raise APIError("InputError", "`deadline` cannot be in the past")
    if deadline - current > MAX_DEADLINE + DRIFT:
        raise APIError("InputError", "`deadline` cannot be more than 5 days into the future")
    if "expires" not in definition:
        dt = datetime.fromtimestamp(deadline, UTC)
        try:
            later = dt.replace(year=dt.year + 1)
        except ValueError:  # 29 February: JavaScript's setFullYear rolls over to 1 March
            later = dt.replace(year=dt.year + 1, month=3, day=1)
        definition["expires"] = to_iso(later.timestamp())
    if deadline > parse_iso(definition["expires"]):
        raise APIError("InputError", "`expires` cannot be before `deadline`")


def finish_definition(task_id: str, definition: dict[str, Any], current: float) -> dict[str, Any]:
    """Validate times, fill the remaining defaults and put the definition in canonical form."""
    definition.setdefault("taskGroupId", task_id)
    _check_times(definition, current)
    if any(s.endswith("**") for s in definition["scopes"]):
        raise APIError("InputError", "scopes must not end with `**`")
    for key in ("created", "deadline", "expires"):
        definition[key] = normalize_iso(definition[key])
    return {key: definition[key] for key in DEFINITION_KEYS}


@dataclass
class TaskRecord:
    """A task as stored: definition, runs and retries left (with its row's indexed columns)."""

    task_id: str
    definition: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    retries_left: int = 0

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> TaskRecord:
        """Rebuild from a `tasks` row."""
        return cls(
            row["task_id"], json.loads(row["definition"]), json.loads(row["runs"]), row["retries_left"]
        )

    @property
    def state(self) -> str:
        """The task's state: its last run's, or `unscheduled`."""
        return self.runs[-1]["state"] if self.runs else "unscheduled"

    @property
    def deadline(self) -> float:
        """Deadline in epoch seconds."""
        return parse_iso(self.definition["deadline"])

    @property
    def expires(self) -> float:
        """Expiry in epoch seconds."""
        return parse_iso(self.definition["expires"])

    @property
    def queue(self) -> str:
        """The taskQueueId."""
        return str(self.definition["taskQueueId"])

    def taken_until(self) -> float | None:
        """Return the takenUntil of the running run, if any (indexed for the claim reaper)."""
        if self.runs and self.runs[-1]["state"] == "running":
            return parse_iso(self.runs[-1]["takenUntil"])
        return None

    def status(self) -> dict[str, Any]:
        """The task-status structure."""
        d = self.definition
        return {
            "taskId": self.task_id,
            "provisionerId": d["provisionerId"],
            "workerType": d["workerType"],
            "taskQueueId": d["taskQueueId"],
            "schedulerId": d["schedulerId"],
            "projectId": d["projectId"],
            "taskGroupId": d["taskGroupId"],
            "deadline": d["deadline"],
            "expires": d["expires"],
            "retriesLeft": self.retries_left,
            "state": self.state,
            "runs": [dict(run) for run in self.runs],
        }

    def run(self, run_id: int) -> dict[str, Any]:
        """A run by id, or 404."""
        if not 0 <= run_id < len(self.runs):
            raise APIError("ResourceNotFound", f"Run {run_id} not found on task `{self.task_id}`.")
        return self.runs[run_id]

    def add_run(self, reason_created: str, current: float) -> dict[str, Any]:
        """Append a pending run."""
        run = {
            "runId": len(self.runs),
            "state": "pending",
            "reasonCreated": reason_created,
            "scheduled": to_iso(current),
        }
        self.runs.append(run)
        return run

    def resolve_run(self, run: dict[str, Any], state: str, reason: str, current: float) -> None:
        """Resolve a pending or running run."""
        run["state"] = state
        run["reasonResolved"] = reason
        run["resolved"] = to_iso(current)
