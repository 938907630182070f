"""Publishing artifacts of a task run: the log line, createArtifact, the transfer, the outcome.

`ArtifactUploader.upload` never raises for a Taskcluster, network or file problem: it returns the
`TaskError` the task should record (see `outcomes.py`), or None. Every API call builds a fresh
client from `credentials()`, because task credentials change on every reclaim and a large upload
can outlive them. Storage per artifact kind:
- `FileArtifact`: `s3` (presigned PUT, gzip-compressed copy when the encoding is gzip) or, when
  the worker creates object artifacts, `object` (object service, then `finishArtifact`);
- `ReferenceArtifact` / `LinkArtifact` / `ErrorArtifact`: `reference` / `link` / `error`.
A 4xx that is not retryable first re-checks the task status: if the run is already resolved
(cancelled, deadline exceeded...) the upload is dropped quietly, with a log line. Decision: this
also applies to 409, because the queue answers 409 for artifacts created on a resolved run; on a
running run, 409 is the seed's malformed-payload conflict.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from generic_worker.artifacts import outcomes
from generic_worker.artifacts.compression import DEFAULT_LEVEL, gzip_copy
from generic_worker.artifacts.content import GZIP, IDENTITY
from generic_worker.artifacts.model import (
    Artifact,
    ErrorArtifact,
    FileArtifact,
    LinkArtifact,
    ReferenceArtifact,
    UploadedArtifact,
)
from generic_worker.artifacts.objects import ObjectUpload, ProtocolError, upload_object
from generic_worker.artifacts.transfer import (
    FileSource,
    LocalReadError,
    PutError,
    PutTarget,
    put_with_retries,
)
from generic_worker.engine.preallocate import NO_SPACE
from generic_worker.engine.tasklog import TaskLog
from generic_worker.errors import TaskError
from generic_worker.tc import TC_ERRORS, Credentials, ServiceFactory, http_status
from generic_worker.timefmt import to_tc

log = logging.getLogger(__name__)

ERROR_MESSAGE_MAX = 4096
"""The queue's limit on an error artifact's message."""

RESOLVED_STATES = frozenset({"completed", "failed", "exception"})


class _Stop(Exception):
    """Ends one upload early with the TaskError to record (None: drop it quietly)."""

    def __init__(self, error: TaskError | None) -> None:
        super().__init__(error.message if error else "stopped quietly")
        self.error = error


def _quote(text: str) -> str:
    """Quote like Go's %q for the log lines (JSON string syntax, non-ASCII kept)."""
    return json.dumps(text, ensure_ascii=False)


def _file_request(storage_type: str, artifact: FileArtifact, size: int) -> dict[str, Any]:
    """The createArtifact body of a file; `contentLength` is the size on disk, before gzip."""
    return {
        "storageType": storage_type,
        "contentType": artifact.content_type,
        "expires": to_tc(artifact.expires),
        "contentLength": size,
    }


class ArtifactUploader:
    """Uploads the artifacts of one task run, at most `concurrency` at a time.

    `uploaded` records every successful upload in completion order (chain of trust hashes the
    local files of the s3/object ones later). `gzip_level` is an ISA-L level (0-3); upstream
    uses zlib's 6, which is 13x slower for a 5 % smaller result (docs/compression.md).
    `temp_dir` holds the anonymous gzip copies (default: the system temporary directory).
    """

    def __init__(
        self,
        *,
        services: ServiceFactory,
        task_id: str,
        run_id: int,
        credentials: Callable[[], Credentials],
        log: TaskLog,
        use_object_storage: bool,
        concurrency: int = 10,
        max_retries: int = 10,
        gzip_level: int = DEFAULT_LEVEL,
        temp_dir: Path | None = None,
    ) -> None:
        self._services = services
        self._task_id = task_id
        self._run_id = run_id
        self._credentials = credentials
        self._log = log
        self._use_object_storage = use_object_storage
        self._max_retries = max_retries
        self._gzip_level = gzip_level
        self._temp_dir = temp_dir
        self._slots = asyncio.Semaphore(concurrency)
        self.uploaded: list[UploadedArtifact] = []
        self.open_as_task_user: Callable[..., Awaitable[FileSource]] | None = None
        """Multiuser: runs a blocking open with the task user's rights (set by the engine), so
        a payload artifact is read only if the task user could read it."""
        self.hash_files = False
        """Record the sha256 of every file uploaded from now on (chain of trust sets it)."""

    async def upload_all(self, artifacts: Sequence[Artifact]) -> list[TaskError]:
        """Upload all `artifacts` in parallel (bounded); the errors, in the order of `artifacts`."""
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self.upload(artifact)) for artifact in artifacts]
        return [error for task in tasks if (error := task.result()) is not None]

    async def upload(self, artifact: Artifact) -> TaskError | None:
        """Upload one artifact; the TaskError the task should record, or None."""
        async with self._slots:
            self._announce(artifact)
            try:
                record = await self._transfer(artifact)
            except _Stop as stop:
                return self._unless_optional(artifact, stop.error)
            self.uploaded.append(record)
            if isinstance(artifact, ErrorArtifact):
                return self._error_artifact_outcome(artifact)
            return None

    def _announce(self, artifact: Artifact) -> None:
        """The seed's log line, written before anything is sent."""
        expiry = to_tc(artifact.expires)
        match artifact:
            case FileArtifact():
                encoding = IDENTITY if self._use_object_storage else artifact.content_encoding
                self._log.info(
                    f"Uploading artifact {artifact.name} from file {artifact.path} with content "
                    f"encoding {_quote(encoding)}, mime type {_quote(artifact.content_type)} and "
                    f"expiry {expiry}"
                )
            case ReferenceArtifact():
                self._log.info(
                    f"Uploading redirect artifact {artifact.name} to URL {artifact.url} with mime "
                    f"type {_quote(artifact.content_type)} and expiry {expiry}"
                )
            case LinkArtifact():
                self._log.info(
                    f"Uploading link artifact {artifact.name} to artifact {artifact.target} with "
                    f"expiry {expiry}"
                )
            case ErrorArtifact():
                line = (
                    f"Uploading error artifact {artifact.name} from file {artifact.path} with "
                    f"message {_quote(artifact.message)}, reason {_quote(artifact.reason)} and "
                    f"expiry {expiry}"
                )
                # An optional artifact's absence is not an error of the task (upstream).
                (self._log.warn if artifact.optional else self._log.error)(line)

    def _error_artifact_outcome(self, artifact: ErrorArtifact) -> TaskError | None:
        text = f"{artifact.reason}: {artifact.message}"
        if artifact.optional:
            self._log.warn(f"Optional artifact {artifact.name} is not available: {text}")
            return None
        self._log.error(f"TASK FAILURE during artifact upload: {text}")
        return TaskError.failure(text)

    def _unless_optional(self, artifact: Artifact, error: TaskError | None) -> TaskError | None:
        optional = isinstance(artifact, FileArtifact | ErrorArtifact) and artifact.optional
        if error is not None and optional:
            self._log.warn(f"Not failing the task for optional artifact {artifact.name}: {error.message}")
            return None
        return error

    async def _transfer(self, artifact: Artifact) -> UploadedArtifact:
        expires = to_tc(artifact.expires)
        match artifact:
            case FileArtifact():
                if self._use_object_storage:
                    return await self._upload_object(artifact)
                return await self._upload_s3(artifact)
            case ReferenceArtifact():
                body: dict[str, Any] = {
                    "storageType": "reference",
                    "url": artifact.url,
                    "contentType": artifact.content_type,
                    "expires": expires,
                }
                await self._create(artifact.name, body)
                return UploadedArtifact(artifact.name, "reference", content_type=artifact.content_type)
            case LinkArtifact():
                body = {"storageType": "link", "artifact": artifact.target, "expires": expires}
                if artifact.content_type:
                    body["contentType"] = artifact.content_type
                await self._create(artifact.name, body)
                return UploadedArtifact(artifact.name, "link", content_type=artifact.content_type)
            case ErrorArtifact():
                body = {
                    "storageType": "error",
                    "message": artifact.message[:ERROR_MESSAGE_MAX],
                    "reason": artifact.reason,
                    "expires": expires,
                }
                await self._create(artifact.name, body)
                return UploadedArtifact(artifact.name, "error")

    # -- files ---------------------------------------------------------------------------------

    async def _open(self, artifact: FileArtifact) -> FileSource:
        try:
            if artifact.task_file and self.open_as_task_user is not None:
                return await self.open_as_task_user(FileSource.open_blocking, artifact.path, artifact.trailer)
            return await FileSource.open(artifact.path, artifact.trailer)
        except LocalReadError as err:
            raise _Stop(outcomes.unreadable(artifact.name, err)) from err

    async def _upload_s3(self, artifact: FileArtifact) -> UploadedArtifact:
        """Run createArtifact (s3), then PUT the file or its gzip copy to the presigned URL."""
        encoding = artifact.content_encoding
        async with await self._open(artifact) as source:
            request = _file_request("s3", artifact, source.size)
            # Ordering: the gzip copy is made before createArtifact, so a copy that cannot be
            # made (a full disk) leaves no artifact without content behind; the backing log's
            # copy is ready at once (made while the task wrote it).
            compressed = await self._gzip(artifact, source) if encoding == GZIP else None
            if compressed is None:
                encoding = IDENTITY
                first = await self._s3_target(artifact, request, encoding)
                await self._put_s3(artifact, request, source, first, encoding)
            else:
                async with compressed:
                    first = await self._s3_target(artifact, request, encoding)
                    await self._put_s3(artifact, request, compressed, first, encoding)
            sha256 = await self._sha256(artifact, source)
        return UploadedArtifact(artifact.name, "s3", artifact.path, encoding, artifact.content_type, sha256)

    async def _sha256(self, artifact: FileArtifact, source: FileSource) -> str | None:
        """The sha256 of the bytes just uploaded, read again from the same open file, if asked for."""
        if not self.hash_files:
            return None
        try:
            return await asyncio.to_thread(source.sha256)
        except LocalReadError as err:
            raise _Stop(outcomes.unreadable(artifact.name, err)) from err

    async def _gzip(self, artifact: FileArtifact, source: FileSource) -> FileSource | None:
        """The gzip copy (made early if the artifact has one).

        None when the disk has no room for it and the artifact may go plain.
        """
        if artifact.precompressed is not None:
            ready = await artifact.precompressed()
            if ready is not None:
                return ready
        try:
            return await gzip_copy(source, self._gzip_level, self._temp_dir)
        except LocalReadError as err:
            raise _Stop(outcomes.unreadable(artifact.name, err)) from err
        except OSError as err:
            if artifact.plain_if_no_room and err.errno in NO_SPACE:
                log.warning(
                    "no room for the compressed copy of %s (%s): uploading it uncompressed",
                    artifact.name,
                    err.strerror,
                )
                return None
            raise _Stop(outcomes.temp_copy_failed(artifact.name, err)) from err

    async def _s3_target(self, artifact: FileArtifact, request: dict[str, Any], encoding: str) -> PutTarget:
        """Where to PUT, from createArtifact (s3); idempotent: run again before a retry for a fresh URL."""
        response = await self._create(artifact.name, request)
        put_url = response.get("putUrl") if isinstance(response, dict) else None
        if not put_url:
            error = ProtocolError("createArtifact response for s3 has no putUrl")
            raise _Stop(outcomes.bad_response(artifact.name, "Queue", error))
        headers = {"Content-Type": str(response.get("contentType") or artifact.content_type)}
        if encoding == GZIP:
            headers["Content-Encoding"] = GZIP
        return PutTarget(str(put_url), headers)

    async def _put_s3(
        self,
        artifact: FileArtifact,
        request: dict[str, Any],
        body: FileSource,
        first: PutTarget,
        encoding: str,
    ) -> None:
        try:
            await put_with_retries(
                self._services.session,
                first,
                body,
                max_retries=self._max_retries,
                refresh=lambda: self._s3_target(artifact, request, encoding),
            )
        except PutError as err:
            raise _Stop(outcomes.put_failed(artifact.name, err)) from err
        except LocalReadError as err:
            raise _Stop(outcomes.unreadable(artifact.name, err)) from err

    async def _upload_object(self, artifact: FileArtifact) -> UploadedArtifact:
        """Run createArtifact (object), the object-service upload, then finishArtifact."""
        async with await self._open(artifact) as source:
            request = _file_request("object", artifact, source.size)
            response = await self._create(artifact.name, request)
            try:
                upload = ObjectUpload.from_response(response)
                await upload_object(
                    object_service=self._services.client(
                        "object", upload.credentials, max_retries=self._max_retries
                    ),
                    session=self._services.session,
                    upload=upload,
                    source=source,
                    content_type=artifact.content_type,
                    max_retries=self._max_retries,
                )
            except ProtocolError as err:
                raise _Stop(outcomes.bad_response(artifact.name, "the object service", err)) from err
            except PutError as err:
                raise _Stop(outcomes.put_failed(artifact.name, err)) from err
            except LocalReadError as err:
                raise _Stop(outcomes.unreadable(artifact.name, err)) from err
            except TC_ERRORS as err:
                error = await self._api_failure(err, artifact.name, "Object service", "upload", None)
                raise _Stop(error) from err
            sha256 = await self._sha256(artifact, source)
        await self._call_queue("finishArtifact", artifact.name, {"uploadId": upload.upload_id})
        return UploadedArtifact(
            artifact.name, "object", artifact.path, IDENTITY, artifact.content_type, sha256
        )

    # -- queue calls and failure mapping ---------------------------------------------------------

    async def _create(self, name: str, body: dict[str, Any]) -> Any:
        """Call createArtifact with the current task credentials; _Stop with the mapped error."""
        return await self._call_queue("createArtifact", name, body)

    async def _call_queue(self, call: str, name: str, body: dict[str, Any]) -> Any:
        queue = self._services.queue(self._credentials(), max_retries=self._max_retries)
        try:
            return await getattr(queue, call)(self._task_id, str(self._run_id), name, body)
        except TC_ERRORS as err:
            raise _Stop(await self._api_failure(err, name, "Queue", call, body)) from err

    async def _api_failure(
        self, error: BaseException, name: str, service: str, call: str, body: dict[str, Any] | None
    ) -> TaskError | None:
        status = http_status(error)
        if status is None:
            return outcomes.network_error(service, name, call, error)
        if status >= 500:
            return outcomes.server_error(status, service, name, call, body)
        resolved = await self._resolved_run()
        if resolved is not None:
            self._log.info(
                f"Not uploading artifact {name}: {service} answered HTTP {status} to {call} and "
                f"task {self._task_id} run {self._run_id} is already resolved ({resolved})"
            )
            return None
        if status == 409 and call == "createArtifact":
            return outcomes.conflict(self._services.root_url, self._task_id, name, error)
        return outcomes.rejected(status, service, name, call, body, error)

    async def _resolved_run(self) -> str | None:
        """`state/reasonResolved` of this run if the queue says it is resolved, else None."""
        try:
            queue = self._services.queue(max_retries=min(self._max_retries, 3))
            response = await queue.status(self._task_id)
        except TC_ERRORS:
            return None
        runs = response.get("status", {}).get("runs", []) if isinstance(response, dict) else []
        for run in runs:
            if run.get("runId") == self._run_id and run.get("state") in RESOLVED_STATES:
                return f"{run.get('state')}/{run.get('reasonResolved')}"
        return None
