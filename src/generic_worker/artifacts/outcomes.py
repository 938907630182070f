"""The task errors an artifact upload can end in, with the texts the task log and queue show.

Mapping (TARGET §9, seed-gw §3.9): createArtifact 409 -> malformed-payload (the seed's conflict
text); 5xx after retries, network errors after retries, failed PUTs and a temporary copy that
cannot be written -> resource-unavailable (but failure when the disk is full: the task filled
it); other 4xx on a run that is still running -> internal-error; a local file that cannot be
read at upload time -> failure (like an error artifact, it is the task's file). Presigned URLs
are shown without their query string (it holds the signature).
"""

from __future__ import annotations

import errno
import json
from collections.abc import Mapping
from typing import Any

from generic_worker.errors import TaskError
from generic_worker.tc.failures import describe


def _payload(body: Mapping[str, Any] | None, call: str) -> str:
    return f" with {call} payload {json.dumps(body, separators=(',', ':'))}" if body else ""


def conflict(root_url: str, task_id: str, name: str, error: BaseException) -> TaskError:
    """Conflict: createArtifact answered 409 as this name was created differently in this run."""
    return TaskError.malformed_payload(
        f"There was a conflict uploading artifact {name} - this suggests artifact {name} was "
        "already uploaded to this task with different content earlier on in this task.\n"
        f"Check the artifacts section of the task payload at {root_url}/tasks/{task_id}\n"
        f"{str(error).strip() or describe(error)}"
    )


def server_error(
    status: int, service: str, name: str, call: str, body: Mapping[str, Any] | None
) -> TaskError:
    """A service kept answering 5xx through all retries."""
    return TaskError.resource_unavailable(
        f"TASK EXCEPTION due to response code {status} from {service} when uploading artifact "
        f"{name}{_payload(body, call)}"
    )


def network_error(service: str, name: str, call: str, error: BaseException) -> TaskError:
    """No answer at all from a service through all retries: an error, never a success."""
    return TaskError.resource_unavailable(
        f"TASK EXCEPTION due to a network error calling {call} of {service} when uploading "
        f"artifact {name}: {describe(error)}"
    )


def rejected(
    status: int,
    service: str,
    name: str,
    call: str,
    body: Mapping[str, Any] | None,
    error: BaseException,
) -> TaskError:
    """A 4xx other than a conflict while the run is still running: the worker did wrong."""
    return TaskError.internal_error(
        f"WORKER EXCEPTION due to response code {status} from {service} when uploading artifact "
        f"{name}{_payload(body, call)}: {describe(error)}"
    )


def put_failed(name: str, error: BaseException) -> TaskError:
    """The body could not be transferred (after retries)."""
    return TaskError.resource_unavailable(
        f"TASK EXCEPTION due to a failed upload of artifact {name}: {error}"
    )


def unreadable(name: str, error: BaseException) -> TaskError:
    """The file was there when artifacts were resolved but cannot be read now."""
    return TaskError.failure(f"file-not-readable-on-worker: artifact {name}: {error}")


def temp_copy_failed(name: str, error: OSError) -> TaskError:
    """The gzip copy could not be written.

    A full disk (ENOSPC, EDQUOT) fails the task: the copy is written in the task directory, on
    the disk the worker keeps `requiredDiskSpaceMegabytes` free on before each claim, so it was
    the task that filled it. Anything else is the worker's trouble: resource-unavailable.
    """
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return TaskError.failure(
            f"TASK FAILURE: no space left on the worker's disk for the compressed copy of artifact "
            f"{name} ({error.strerror}): the task filled the disk of its task directory"
        )
    return TaskError.resource_unavailable(
        f"TASK EXCEPTION due to a failure writing the compressed copy of artifact {name}: "
        f"{error.strerror or error}"
    )


def bad_response(name: str, service: str, error: BaseException) -> TaskError:
    """A service answered in a way the protocol does not allow."""
    return TaskError.internal_error(
        f"WORKER EXCEPTION due to an unexpected response from {service} when uploading artifact "
        f"{name}: {error}"
    )
