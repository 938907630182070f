"""The queue's request-body schemas, authored after upstream's `schemas/queue/v1/*-request.json`."""

from __future__ import annotations

from typing import Any

from tclocal.core.validation import (
    DATE_TIME,
    IDENTIFIER,
    PROJECT_ID,
    SCOPE,
    SLUGID,
    OneOfValidator,
    Validator,
    obj,
)

PRIORITIES = ["highest", "very-high", "high", "medium", "low", "very-low", "lowest"]
TASK_QUEUE_ID = r"^[a-zA-Z0-9-_]{1,38}/[a-z]([-a-z0-9]{0,36}[a-z0-9])?$"
WORKER_TYPE = r"^[a-z]([-a-z0-9]{0,36}[a-z0-9])?$"
PROVISIONER_ID = r"^[a-zA-Z0-9-_]{1,38}$"
WORKER_ID: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 38,
    "pattern": IDENTIFIER,
}
ERROR_REASONS = [
    "file-missing-on-worker",
    "invalid-resource-on-worker",
    "too-large-file-on-worker",
    "file-not-readable-on-worker",
]
EXCEPTION_REASONS = [
    "worker-shutdown",
    "malformed-payload",
    "resource-unavailable",
    "internal-error",
    "intermittent-task",
]  # today's `task-exception-request`: no `superseded` (the seed-era queue took it; TARGET §10)

_METADATA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 255},
        "description": {"type": "string", "maxLength": 32768},
        "owner": {"type": "string", "maxLength": 255},
        "source": {"type": "string", "maxLength": 4096, "pattern": "^(https?://|ssh://|git@)"},
    },
    "required": ["name", "description", "owner", "source"],
    "additionalProperties": False,
}

CREATE_TASK = Validator(
    obj(
        ["created", "deadline", "payload", "metadata"],
        provisionerId={"type": "string", "pattern": PROVISIONER_ID},
        workerType={"type": "string", "pattern": WORKER_TYPE},
        taskQueueId={"type": "string", "pattern": TASK_QUEUE_ID},
        schedulerId={"type": "string", "minLength": 1, "maxLength": 38, "pattern": IDENTIFIER},
        projectId={"type": "string", "minLength": 1, "maxLength": 500, "pattern": PROJECT_ID},
        taskGroupId={"type": "string", "pattern": SLUGID},
        dependencies={
            "type": "array",
            "items": {"type": "string", "pattern": SLUGID},
            "maxItems": 10000,
            "uniqueItems": True,
        },
        requires={"type": "string", "enum": ["all-completed", "all-resolved"]},
        routes={
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 249},
            "maxItems": 64,
            "uniqueItems": True,
        },
        priority={"type": "string", "enum": PRIORITIES},
        retries={"type": "integer", "minimum": 0, "maximum": 49},
        created=DATE_TIME,
        deadline=DATE_TIME,
        expires=DATE_TIME,
        scopes={"type": "array", "items": {"type": "string", "pattern": SCOPE}, "uniqueItems": False},
        payload={"type": "object"},
        metadata=_METADATA,
        tags={"type": "object", "additionalProperties": {"type": "string", "maxLength": 4096}},
        extra={"type": "object"},
    )
)

CLAIM_WORK = Validator(
    obj(
        ["workerGroup", "workerId", "tasks"],
        tasks={"type": "integer", "minimum": 1, "maximum": 32},
        workerGroup=WORKER_ID,
        workerId=WORKER_ID,
    )
)

TASK_EXCEPTION = Validator(obj(["reason"], reason={"type": "string", "enum": EXCEPTION_REASONS}))

FINISH_ARTIFACT = Validator(obj(["uploadId"], uploadId={"type": "string", "pattern": SLUGID}))

_CONTENT_TYPE = {"type": "string", "maxLength": 255}


def _variant(kind: str, required: list[str], **properties: Any) -> dict[str, Any]:
    return obj(
        ["storageType", "expires", *required],
        storageType={"type": "string", "enum": [kind]},
        expires=DATE_TIME,
        **properties,
    )


POST_ARTIFACT = OneOfValidator(
    "storageType",
    {
        "s3": _variant(
            "s3",
            ["contentType"],
            contentType=_CONTENT_TYPE,
            contentLength={"type": "integer", "minimum": 0},
        ),
        "object": _variant(
            "object",
            ["contentType"],
            contentType=_CONTENT_TYPE,
            contentLength={"type": "integer", "minimum": 0},
        ),
        "reference": _variant(
            "reference",
            ["url", "contentType"],
            url={"type": "string", "format": "uri"},
            contentType=_CONTENT_TYPE,
        ),
        "link": _variant("link", ["artifact"], artifact={"type": "string"}, contentType=_CONTENT_TYPE),
        "error": _variant(
            "error",
            ["reason", "message"],
            reason={"type": "string", "enum": ERROR_REASONS},
            message={"type": "string", "maxLength": 4096},
        ),
    },
)
