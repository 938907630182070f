"""Where mount content comes from: a dependency's artifact, an indexed artifact, a URL, or inline.

Artifacts are fetched as upstream does today: `queue.latestArtifact` (artifact-content) with the
**task's** credentials (so the queue enforces `queue:get-artifact:` scopes), then the `s3` or
`reference` URL, or the object service's `startDownload` with the credentials the queue returned.
`error` artifacts fail the mount with their reason. Indexed content is resolved with
`index.findTask` first, and keyed by the task it resolves to, so re-indexing forces a new
download while the same task is a cache hit.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from generic_worker.mounts.download import RetryableError
from generic_worker.mounts.errors import MountError
from generic_worker.tc import TC_ERRORS, Credentials
from generic_worker.tc.failures import describe, http_status


@dataclass
class FetchContext:
    """What content sources need: the download session and Taskcluster clients for this task."""

    session: aiohttp.ClientSession
    queue: Callable[[], Any]
    """A queue client with the task's current credentials."""
    client: Callable[[str, Credentials | None], Any]
    """`ServiceFactory.client`: a client for a service with the given credentials."""


@dataclass
class ArtifactSource:
    """The latest run's artifact `name` of task `task_id`."""

    task_id: str
    name: str
    sha256: str | None = None
    transport_sha256: str | None = field(default=None, compare=False)
    """The hash the object service promised for the last URL handed out (checked after download)."""

    @property
    def key(self) -> str:
        """The download-cache key (the seed's)."""
        return f"artifact:{self.task_id}:{self.name}"

    @property
    def description(self) -> str:
        """How logs name it (the seed's)."""
        return f"task {self.task_id} artifact {self.name}"

    async def url(self, ctx: FetchContext) -> str:
        """Ask the queue where the content is; fresh for every attempt (signed URLs expire)."""
        content = await _call(lambda: ctx.queue().latestArtifact(self.task_id, self.name))
        kind = content.get("storageType")
        if kind in ("s3", "reference"):
            return str(content["url"])
        if kind == "object":
            objects = ctx.client("object", content["credentials"])
            request = {"acceptDownloadMethods": {"getUrl": True}}
            answer = await _call(lambda: objects.startDownload(content["name"], request))
            if answer.get("method") != "getUrl":
                raise MountError(f"the object service offered no usable download method: {answer}")
            self.transport_sha256 = (answer.get("hashes") or {}).get("sha256")
            return str(answer["url"])
        if kind == "error":
            raise MountError(
                f"the artifact is an error artifact ({content.get('reason')}): {content.get('message')}"
            )
        raise MountError(f"unexpected artifact storage type {kind!r}")


@dataclass
class URLSource:
    """Content at a URL (a plain GET, following redirects)."""

    address: str
    sha256: str | None = None
    transport_sha256: str | None = None

    @property
    def key(self) -> str:
        """The download-cache key (the seed's)."""
        return f"urlcontent:{self.address}"

    @property
    def description(self) -> str:
        """How logs name it (the seed's)."""
        return f"url {self.address}"

    async def url(self, ctx: FetchContext) -> str:
        """The URL itself."""
        return self.address


@dataclass
class InlineSource:
    """Content given in the payload (`raw` or `base64`): never downloaded, never cached."""

    data: bytes
    kind: str

    @property
    def description(self) -> str:
        """How logs name it."""
        return f"{self.kind} content ({len(self.data)} bytes)"


@dataclass
class IndexedRef:
    """An artifact of whatever task the index has under `namespace` (resolved at mount time)."""

    namespace: str
    artifact: str

    async def resolve(self, ctx: FetchContext) -> ArtifactSource:
        """Ask the index which task it is (`index.findTask`)."""
        try:
            found = await _call(lambda: ctx.client("index", None).findTask(self.namespace))
        except (RetryableError, MountError) as e:
            raise MountError(f"could not find the task indexed under {self.namespace}: {e}") from None
        return ArtifactSource(str(found["taskId"]), self.artifact)


DownloadSource = ArtifactSource | URLSource
Source = ArtifactSource | URLSource | InlineSource | IndexedRef


def parse_content(content: Mapping[str, Any]) -> Source:
    """The source a valid payload `content` object names (`MountError` for bad base64)."""
    if "taskId" in content:
        return ArtifactSource(content["taskId"], content["artifact"], content.get("sha256"))
    if "namespace" in content:
        return IndexedRef(content["namespace"], content["artifact"])
    if "url" in content:
        return URLSource(content["url"], content.get("sha256"))
    if "raw" in content:
        return InlineSource(content["raw"].encode("utf-8"), "raw")
    try:
        return InlineSource(base64.b64decode(content["base64"], validate=True), "base64")
    except (binascii.Error, ValueError) as e:
        raise MountError(f"base64 content is not valid base64: {e}") from None


async def _call(call: Callable[[], Any]) -> Any:
    """A Taskcluster call: 5xx and network problems are retryable, anything else is final."""
    try:
        return await call()
    except TC_ERRORS as e:
        status = http_status(e)
        if status is None or status >= 500:
            raise RetryableError(describe(e)) from None
        raise MountError(describe(e)) from None
