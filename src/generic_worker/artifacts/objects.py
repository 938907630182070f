"""The object-service half of an `object` artifact (modern-gw §3.3).

After the queue's createArtifact returned `{name, projectId, uploadId, expires, credentials}`:
`createUpload` proposing `dataInline` (files under 8 KiB, base64) and `putUrl`; then, for
`putUrl`, a PUT with exactly the headers the service returned, hashing sha256 and sha512 while
streaming; then `finishUpload` with the hashes. The queue's `finishArtifact` is the caller's
(it needs the task credentials). No gzip: object artifacts are stored as they are (upstream).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from generic_worker.artifacts.transfer import Digests, FileSource, PutTarget, put_with_retries
from generic_worker.tc import Credentials

DATA_INLINE_MAX = 8192
"""Only files strictly smaller than this are proposed inline (as upstream's client does)."""


class ProtocolError(Exception):
    """A service answered with something the protocol does not allow."""


@dataclass(frozen=True)
class ObjectUpload:
    """What the queue's createArtifact returned for an `object` artifact."""

    name: str
    project_id: str
    upload_id: str
    expires: str
    credentials: Credentials

    @classmethod
    def from_response(cls, response: Mapping[str, Any]) -> ObjectUpload:
        """Read the createArtifact response; ProtocolError if a field is missing."""
        try:
            creds = response["credentials"]
            credentials: Credentials = {
                "clientId": creds["clientId"],
                "accessToken": creds["accessToken"],
            }
            if creds.get("certificate"):
                credentials["certificate"] = creds["certificate"]
            return cls(
                name=str(response["name"]),
                project_id=str(response["projectId"]),
                upload_id=str(response["uploadId"]),
                expires=str(response["expires"]),
                credentials=credentials,
            )
        except (KeyError, TypeError) as err:
            raise ProtocolError(f"createArtifact response for an object lacks {err}") from err


async def upload_object(
    *,
    object_service: Any,
    session: aiohttp.ClientSession,
    upload: ObjectUpload,
    source: FileSource,
    content_type: str,
    max_retries: int,
) -> None:
    """Negotiate, transfer and finish one object upload (object_service: client with its creds).

    Raises what the client raises (TC_ERRORS), PutError, LocalReadError or ProtocolError.
    """
    methods: dict[str, Any] = {"putUrl": {"contentType": content_type, "contentLength": source.size}}
    inline: bytes | None = None
    if source.size < DATA_INLINE_MAX:
        inline = await source.read_all()
        methods["dataInline"] = {
            "contentType": content_type,
            "objectData": base64.b64encode(inline).decode("ascii"),
        }
    response = await object_service.createUpload(
        upload.name,
        {
            "projectId": upload.project_id,
            "uploadId": upload.upload_id,
            "expires": upload.expires,
            "proposedUploadMethods": methods,
        },
    )
    chosen = response.get("uploadMethod") if isinstance(response, Mapping) else None
    if not isinstance(chosen, Mapping):
        raise ProtocolError("createUpload response has no uploadMethod")
    if chosen.get("dataInline") and inline is not None:
        hashes = {
            "sha256": hashlib.sha256(inline).hexdigest(),
            "sha512": hashlib.sha512(inline).hexdigest(),
        }
    elif isinstance(chosen.get("putUrl"), Mapping):
        put = chosen["putUrl"]
        target = PutTarget(str(put["url"]), {str(k): str(v) for k, v in put.get("headers", {}).items()})
        digests = await put_with_retries(session, target, source, max_retries=max_retries, digests=Digests)
        assert digests is not None  # a digests factory was given
        hashes = digests.hashes()
    else:
        raise ProtocolError("could not negotiate an upload method with the object service")
    await object_service.finishUpload(
        upload.name,
        {"projectId": upload.project_id, "uploadId": upload.upload_id, "hashes": hashes},
    )
