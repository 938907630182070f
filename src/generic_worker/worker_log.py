"""The worker's own log (stderr): text or JSON lines, the task a line is about, secrets masked.

`logFormat: text` (the default) keeps the seed's shape, `2006/01/02 15:04:05 message`.
`logFormat: json` writes one JSON object per line for log shippers:

    {"time": "2026-12-06T05:01:02.345Z", "level": "info", "logger": "generic_worker.engine.worker",
     "message": "Claimed task ... run 0", "taskId": "...", "runId": 0, "fields": {...}}

`taskId`/`runId` are present on every line logged while a task run is being handled (a context
variable set by the engine for that run's asyncio task and everything it starts); `fields`
holds any `extra=` values of the call; `exception` the traceback, if any. In both formats the
values registered with `add_secret` (the config's `accessToken`, `certificate`,
`livelogSecret`, a Sentry DSN) are replaced by `*************` before anything is written.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

MASK = "*************"
TEXT, JSON = "text", "json"
LOG_FORMATS = (TEXT, JSON)

_TASK: ContextVar[tuple[str, int] | None] = ContextVar("generic_worker_task", default=None)
_SECRETS: set[str] = set()
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskId",
    "runId",
}


def bind_task(task_id: str, run_id: int) -> None:
    """Mark the current asyncio task (and what it starts from now on) as handling this run."""
    _TASK.set((task_id, run_id))


def add_secret(value: str) -> None:
    """Never write `value` to the worker log (values shorter than 6 characters are ignored)."""
    if len(value) >= 6:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """`text` with every registered secret masked."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class TaskAndSecretsFilter(logging.Filter):
    """Adds `taskId`/`runId` from the context and masks secrets in the message and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record, after rewriting it."""
        task = _TASK.get()
        if task is not None and not hasattr(record, "taskId"):
            record.taskId, record.runId = task
        if _SECRETS:
            record.msg, record.args = redact(record.getMessage()), None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
        return True


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring for its keys)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if hasattr(record, "taskId"):
            line["taskId"], line["runId"] = record.taskId, getattr(record, "runId", None)
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if fields:
            line["fields"] = fields
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = redact(record.exc_text)
        return redact(json.dumps(line, default=str, ensure_ascii=False))


def make_handler(log_format: str = TEXT) -> logging.Handler:
    """A stderr handler in `log_format`, with the task context and secret masking attached."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == JSON:
        handler.setFormatter(JsonLinesFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%Y/%m/%d %H:%M:%S"))
    handler.addFilter(TaskAndSecretsFilter())
    return handler
