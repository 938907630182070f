"""Typed view of a task payload that passed validation, and the defaults the schemas declare.

The TypedDicts mirror the schemas key for key (a test walks both), so a feature reading
``payload["features"]`` gets type checking without a second, hand-kept parser. They describe a
payload *after* ``validate_payload`` found no problem: nothing here re-checks values.

No ``from __future__ import annotations`` here: TypedDict needs ``Required[...]`` evaluated to know
its required keys at run time (``__required_keys__``), which tests compare with the schemas.
"""

from collections.abc import Mapping
from typing import Final, Literal, Required, TypeAlias, TypedDict, cast

__all__ = [
    "DEFAULT_BACKING_LOG_NAME",
    "DEFAULT_LIVE_LOG_NAME",
    "DOCKER_WORKER_PAYLOAD_UNSUPPORTED",
    "FEATURE_DEFAULTS",
    "ArchiveFormat",
    "Artifact",
    "ArtifactContent",
    "Base64Content",
    "Content",
    "ContentKind",
    "FeatureName",
    "Features",
    "FileFormat",
    "FileMount",
    "IndexedContent",
    "Logs",
    "Mount",
    "MountKind",
    "OnExitStatus",
    "Payload",
    "RawContent",
    "ReadOnlyDirectory",
    "URLContent",
    "WritableDirectoryCache",
    "as_payload",
    "backing_log_name",
    "content_kind",
    "feature_enabled",
    "is_docker_worker_payload",
    "live_log_name",
    "mount_kind",
    "purge_caches_exit_codes",
    "retry_exit_codes",
]

DOCKER_WORKER_PAYLOAD_UNSUPPORTED: Final = "docker-worker payloads are not supported by this worker"
DEFAULT_LIVE_LOG_NAME: Final = "public/logs/live.log"
DEFAULT_BACKING_LOG_NAME: Final = "public/logs/live_backing.log"

ArchiveFormat: TypeAlias = Literal[
    "7z",
    "rar",
    "tar",
    "tar.br",
    "tar.bz2",
    "tar.gz",
    "tar.lz",
    "tar.lz4",
    "tar.mz",
    "tar.sz",
    "tar.xz",
    "tar.zst",
    "tar.zz",
    "zip",
]
"""Archive formats of directory mounts (the interface: which ones extract is up to the mounts)."""

FileFormat: TypeAlias = Literal["br", "bz2", "gz", "lz", "lz4", "mz", "sz", "xz", "zst", "zz"]
"""Compression formats a file mount's content may be decompressed from."""

FeatureName: TypeAlias = Literal[
    "backingLog",
    "chainOfTrust",
    "interactive",
    "liveLog",
    "loopbackAudio",
    "loopbackVideo",
    "resourceMonitor",
    "runTaskAsCurrentUser",
    "taskclusterProxy",
]
"""Keys of ``payload.features`` (``runTaskAsCurrentUser`` exists only in the multiuser schema)."""

MountKind: TypeAlias = Literal["fileMount", "writableDirectoryCache", "readOnlyDirectory"]
"""The three mount kinds, named as the schemas' definitions."""

ContentKind: TypeAlias = Literal["artifact", "indexed", "url", "raw", "base64"]
"""The five sources of mount content."""

FEATURE_DEFAULTS: Final[Mapping[FeatureName, bool]] = {
    "backingLog": True,
    "chainOfTrust": False,
    "interactive": False,
    "liveLog": True,
    "loopbackAudio": False,
    "loopbackVideo": False,
    "resourceMonitor": True,
    "runTaskAsCurrentUser": False,
    "taskclusterProxy": False,
}
"""Value of each feature flag when the payload leaves it out (as the schemas' ``default``s say)."""


class Artifact(TypedDict, total=False):
    """One entry of ``payload.artifacts``: a file or directory to upload after the commands."""

    type: Required[Literal["file", "directory"]]
    path: Required[str]
    name: str
    expires: str
    contentType: str
    contentEncoding: Literal["identity", "gzip"]
    optional: bool


class ArtifactContent(TypedDict, total=False):
    """Mount content from another task's artifact (``taskId`` must be a dependency)."""

    taskId: Required[str]
    artifact: Required[str]
    sha256: str


class IndexedContent(TypedDict):
    """Mount content from the artifact of the task indexed under ``namespace``."""

    namespace: str
    artifact: str


class URLContent(TypedDict, total=False):
    """Mount content downloaded from ``url``."""

    url: Required[str]
    sha256: str


class RawContent(TypedDict):
    """Mount content given literally."""

    raw: str


class Base64Content(TypedDict):
    """Mount content given base64-encoded."""

    base64: str


Content: TypeAlias = ArtifactContent | IndexedContent | URLContent | RawContent | Base64Content
"""Any one of the five content kinds; ``content_kind`` tells which."""


class FileMount(TypedDict, total=False):
    """A file written before the commands run, optionally decompressed."""

    file: Required[str]
    content: Required[Content]
    format: FileFormat


class WritableDirectoryCache(TypedDict, total=False):
    """A directory kept between tasks under ``cacheName``; ``content``/``format`` preload it."""

    directory: Required[str]
    cacheName: Required[str]
    content: Content
    format: ArchiveFormat


class ReadOnlyDirectory(TypedDict):
    """A directory extracted from an archive for this task only."""

    directory: str
    content: Content
    format: ArchiveFormat


Mount: TypeAlias = FileMount | WritableDirectoryCache | ReadOnlyDirectory
"""Any one of the three mount kinds; ``mount_kind`` tells which."""


class Features(TypedDict, total=False):
    """``payload.features``: every flag optional, defaults in ``FEATURE_DEFAULTS``."""

    backingLog: bool
    chainOfTrust: bool
    interactive: bool
    liveLog: bool
    loopbackAudio: bool
    loopbackVideo: bool
    resourceMonitor: bool
    runTaskAsCurrentUser: bool
    taskclusterProxy: bool


class Logs(TypedDict, total=False):
    """``payload.logs``: artifact names of the two task logs."""

    live: str
    backing: str


class OnExitStatus(TypedDict, total=False):
    """``payload.onExitStatus``: exit codes that change the task's resolution."""

    retry: list[int]
    purgeCaches: list[int]


class Payload(TypedDict, total=False):
    """A native generic-worker payload that passed validation."""

    command: Required[list[list[str]]]
    maxRunTime: Required[int]
    env: dict[str, str]
    artifacts: list[Artifact]
    features: Features
    logs: Logs
    mounts: list[Mount]
    onExitStatus: OnExitStatus
    osGroups: list[str]
    supersederUrl: str
    taskclusterProxyInterface: Literal["localhost", "docker-bridge"]


def is_docker_worker_payload(payload: object) -> bool:
    """Say whether ``payload`` is a docker-worker payload (an object with an ``image`` key).

    Upstream tells the two payload kinds apart this way; the payload validator translates them
    (d2g, when ``d2gConfig.enableD2G``) or refuses them with upstream's text.
    """
    return isinstance(payload, dict) and "image" in payload


def as_payload(payload: object) -> Payload:
    """Give a payload that ``validate_payload`` accepted its static type.

    Only checks that it is an object: calling this on an unvalidated payload is a bug.
    """
    if not isinstance(payload, dict):
        raise TypeError(f"a task payload is a JSON object, not {type(payload).__name__}")
    return cast(Payload, payload)


def feature_enabled(payload: Payload, name: FeatureName) -> bool:
    """Say whether the payload asks for feature ``name``, falling back on its schema default."""
    return payload.get("features", {}).get(name, FEATURE_DEFAULTS[name])


def live_log_name(payload: Payload) -> str:
    """Artifact name of the live log (``logs.live``, default ``public/logs/live.log``)."""
    return payload.get("logs", {}).get("live", DEFAULT_LIVE_LOG_NAME)


def backing_log_name(payload: Payload) -> str:
    """Artifact name of the uploaded log (``logs.backing``, else ``DEFAULT_BACKING_LOG_NAME``)."""
    return payload.get("logs", {}).get("backing", DEFAULT_BACKING_LOG_NAME)


def retry_exit_codes(payload: Payload) -> frozenset[int]:
    """Exit codes that resolve the task ``exception/intermittent-task`` (``onExitStatus.retry``)."""
    return frozenset(payload.get("onExitStatus", {}).get("retry", ()))


def purge_caches_exit_codes(payload: Payload) -> frozenset[int]:
    """Exit codes of the last command that purge the caches (``onExitStatus.purgeCaches``)."""
    return frozenset(payload.get("onExitStatus", {}).get("purgeCaches", ()))


def mount_kind(mount: Mount) -> MountKind:
    """Tell which kind a valid mount is: the keys each kind requires tell them apart."""
    if "file" in mount:
        return "fileMount"
    if "cacheName" in mount:
        return "writableDirectoryCache"
    return "readOnlyDirectory"


def content_kind(content: Content) -> ContentKind:
    """Tell which kind valid mount content is, by the key only that kind requires."""
    if "taskId" in content:
        return "artifact"
    if "namespace" in content:
        return "indexed"
    if "url" in content:
        return "url"
    if "raw" in content:
        return "raw"
    return "base64"
