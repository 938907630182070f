"""Reading `generic-worker exec`'s TASK-FILE: a task definition or a bare payload, YAML or JSON.

Anything that stops the file from becoming a task is a `TaskFileError` (exit 64) with a
message naming the file: unreadable, not YAML/JSON, not an object, or with dependencies (one
task runs alone, so nothing it depends on could ever complete).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


class TaskFileError(Exception):
    """The task file cannot be read, parsed or run alone."""


def read_task_file(name: str) -> tuple[str, dict[str, Any]]:
    """Return (a short name for the task, its definition) from the file `name` (`-`: stdin)."""
    label = "<stdin>" if name == "-" else name
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TaskFileError(f"cannot read task file {label}: {getattr(e, 'strerror', None) or e}") from e
    return ("stdin" if name == "-" else Path(name).stem), parse_task(text, label)


def parse_task(text: str, label: str) -> dict[str, Any]:
    """The task definition in `text` (a bare payload becomes `{"payload": ...}`)."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise TaskFileError(f"task file {label} is neither JSON nor YAML: {e}") from e
    if not isinstance(data, dict):
        raise TaskFileError(f"task file {label} must hold an object (a task definition or a payload)")
    task = data if "payload" in data else {"payload": data}
    if not isinstance(task["payload"], dict):
        raise TaskFileError(f"task file {label}: `payload` must be an object")
    if task.get("dependencies"):
        raise TaskFileError(
            f"task file {label} has dependencies {task['dependencies']}: `generic-worker exec` runs one "
            "task alone, so they could never be satisfied; remove them (run the tasks it needs first)"
        )
    task.pop("dependencies", None)
    return task
