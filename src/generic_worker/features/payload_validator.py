"""Payload validation: the authored schema, docker-worker payloads, maxRunTime and artifact expiries.

Failures are `exception/malformed-payload`, logged with the seed's lines
(`TASK FAIL since the task payload is invalid. See errors:` and one `- <field>: <problem>` each),
followed by the schema the payload must conform to.
"""

from __future__ import annotations

import json
from datetime import timedelta

from generic_worker.d2g.prepare import DWPayloadRefused, d2g_disabled_message, docker_worker_schema, prepare
from generic_worker.engine.feature import FeatureBase, TaskFeature, TaskFeatureBase
from generic_worker.engine.taskrun import TaskRun
from generic_worker.errors import TaskError
from generic_worker.payload import schema_json
from generic_worker.payload.gojson import go_json_dumps
from generic_worker.payload.model import is_docker_worker_payload
from generic_worker.payload.validate import invalid_payload_log_lines, validate_payload
from generic_worker.tc import TC_ERRORS
from generic_worker.timefmt import parse_tc, to_tc

SLACK = timedelta(seconds=1)


class PayloadValidatorFeature(FeatureBase):
    """Checks the payload before any other feature reads it."""

    name = "Payload Validator"

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """The per-task part."""
        return _Validator(task)


class _Validator(TaskFeatureBase):
    def __init__(self, task: TaskRun) -> None:
        self.task = task

    async def start(self) -> None:
        task = self.task
        if is_docker_worker_payload(task.raw_payload):
            await self._translate_docker_worker_payload()
        problems = validate_payload(task.payload if task.d2g else task.raw_payload, task.engine)
        if problems:
            for line in invalid_payload_log_lines(problems):
                task.log.error(line)
            task.log.error("Task payload for this worker type must conform to the following jsonschema:")
            task.log.error(schema_json(task.engine))
            raise TaskError.malformed_payload(f"Validation of payload failed for task {task.task_id}")
        max_run_time = task.payload["maxRunTime"]
        if max_run_time > task.config.max_task_run_time:
            allowed = task.config.max_task_run_time
            raise TaskError.malformed_payload(
                f"task's maxRunTime of {max_run_time} exceeded allowed maximum of {allowed}"
            )
        self._check_artifact_expiries()

    async def _translate_docker_worker_payload(self) -> None:
        """d2g: check and translate; afterwards `task.payload` is the native payload."""
        task = self.task
        if not task.config.d2g.enable_d2g:
            raise TaskError.malformed_payload(
                d2g_disabled_message(task.config.root_url, task.config.task_queue_id)
            )
        try:
            d2g, scopes = await prepare(task.definition, task.config.d2g, task.engine, task.expand_scopes)
        except DWPayloadRefused as e:
            if e.problems:
                for line in invalid_payload_log_lines(e.problems):
                    task.log.error(line)
                task.log.error("Docker-worker payloads (d2g) must conform to the following jsonschema:")
                task.log.error(go_json_dumps(docker_worker_schema(), indent=2))
            raise TaskError.malformed_payload(str(e)) from e
        except TC_ERRORS as e:
            why = f"Could not expand task scopes with the auth service: {e}"
            raise TaskError.resource_unavailable(why) from e
        task.d2g = d2g
        task.payload = d2g.translation.payload
        task.check_features_against(scopes)
        if task.config.d2g.log_translation:
            task.log.info("[d2g] Translated docker-worker payload:")
            task.log.info(json.dumps(task.payload, indent=2, sort_keys=True))

    def _check_artifact_expiries(self) -> None:
        task = self.task
        deadline, expires = task.deadline, task.expires
        for artifact in task.payload.get("artifacts", []):
            if "expires" not in artifact:
                continue
            when = parse_tc(artifact["expires"])
            path = artifact["path"]
            if when + SLACK < deadline:
                raise TaskError.malformed_payload(
                    f"Malformed payload: artifact '{path}' expires before task deadline "
                    f"({to_tc(when)} is before {to_tc(deadline)})"
                )
            if when > expires + SLACK:
                raise TaskError.malformed_payload(
                    f"Malformed payload: artifact '{path}' expires after task expiry "
                    f"({to_tc(when)} is after {to_tc(expires)})"
                )
