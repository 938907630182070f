"""Command executor: runs `payload.command` one argv at a time, last in the feature list.

Each command runs without a shell in the task directory, with the task's environment, its output
interleaved into the task log. The first non-zero exit stops the rest: `failed/failed`, or
`exception/intermittent-task` when the code is listed in `onExitStatus.retry`. A command that
cannot start fails the task with a clear message (the seed crashed the worker). Stopping kills
every process the task left behind, before artifacts are uploaded.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence

from generic_worker import metrics
from generic_worker.engine.feature import FeatureBase, TaskFeature, TaskFeatureBase
from generic_worker.engine.taskrun import TaskRun
from generic_worker.errors import ExecutionErrors, TaskError
from generic_worker.payload.model import as_payload, retry_exit_codes
from generic_worker.process import Command
from generic_worker.timefmt import now

log = logging.getLogger(__name__)

_PLAIN = re.compile(r"^[A-Za-z0-9_/:=\-']+$")


def shell_escape(token: str) -> str:
    """Quote one argv token the way the seed's logs show it (taskcluster/shell, 2018)."""
    if not token:
        return "''"
    if _PLAIN.match(token):
        return token.replace("'", "\\'")
    quoted = "'" + token.replace("'", "'\\''") + "'"
    if quoted.startswith("''"):
        quoted = quoted[2:]
    return quoted.replace("\\'''", "\\'")


def shell_join(argv: Sequence[str]) -> str:
    """The `Executing command` rendering of an argv."""
    return " ".join(shell_escape(t) for t in argv)


class CommandExecutorFeature(FeatureBase):
    """Runs the task's commands."""

    name = "Command Executor"

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """The per-task part."""
        return _Executor(task)


class _Executor(TaskFeatureBase):
    def __init__(self, task: TaskRun) -> None:
        self.task = task

    async def start(self) -> None:
        task = self.task
        payload = as_payload(task.payload)
        retry = retry_exit_codes(payload)
        for index, argv in enumerate(payload["command"]):
            if task.aborted:
                return
            task.log.info(f"Executing command {index}: {shell_join(argv)}")
            log.info("task %s: executing command %d: %s", task.task_id, index, json.dumps(argv))
            command = Command(
                argv=tuple(argv), cwd=task.task_dir, env=task.environment(), user=task.command_user
            )
            if index == 0:
                metrics.CLAIM_TO_FIRST_COMMAND.observe((now() - task.claimed_at).total_seconds())
            result = await task.processes.run(command)
            if task.aborted:
                return
            if result.start_error is not None:
                raise TaskError.failure(f"Command {index} could not start: {result.start_error}")
            code = result.exit_code if result.exit_code is not None else -1
            log.info(
                "task %s: command %d: %s after %.3fs",
                task.task_id,
                index,
                result.describe(),
                result.wall_time,
            )
            task.log.info(f"Exit Code: {code}")
            task.last_exit_code = code
            if code == 0:
                continue
            if code in retry:
                raise TaskError.intermittent_task(
                    f"Task appears to have failed intermittently - exit code {code} found in task "
                    "payload.onExitStatus list"
                )
            raise TaskError.failure(result.describe())

    async def stop(self, errors: ExecutionErrors) -> None:
        killed = await self.task.processes.kill_all()
        if killed:
            self.task.log.info(f"Killed {killed} process(es) the task left running")
