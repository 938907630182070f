"""The four ways a docker-worker payload names its image, and what each needs before `docker run`.

- a string, or `{type: docker-image, name}`: a registry image, pulled (`docker pull`) every time,
  as upstream does (a tag may have moved);
- `{type: task-image, taskId, path}`: a `docker save` tarball published by another task;
- `{type: indexed-image, namespace, path}`: the same, found through the index.

The last two become a file mount named `dockerimage` (downloaded by the mounts feature with the
task's credentials) and are loaded with `docker load`. Docker reads gzip, bzip2, xz and zstd
tarballs itself, so those are handed over as downloaded; `.lz4` is decompressed by the mount.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

IMAGE_FILE = "dockerimage"
_EXTENSION_FORMATS = {".bz2": "bz2", ".gz": "gz", ".lz4": "lz4", ".xz": "xz", ".zst": "zst"}
_DOCKER_READS = frozenset({"gz", "bz2", "xz", "zst"})
# A loose form of docker's reference grammar: [registry[:port]/]path[:tag][@digest], lower-case path.
_REFERENCE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@[A-Za-z0-9_+.-]+:[0-9a-fA-F]{32,})?$"
)


class InvalidImage(ValueError):
    """The payload's image cannot be used (e.g. an invalid reference)."""


@dataclass(frozen=True)
class ImageSpec:
    """One payload image: its kind and the fields of its kind."""

    kind: str  # "docker-image" (names too), "indexed-image" or "task-image"
    name: str = ""
    namespace: str = ""
    task_id: str = ""
    path: str = ""

    @property
    def is_artifact(self) -> bool:
        """True for images published as an artifact (task-image, indexed-image)."""
        return self.kind in ("task-image", "indexed-image")

    @property
    def run_reference(self) -> str:
        """What `docker run` is given: the name, or the placeholder of the loaded image's id."""
        return "__D2G_IMAGE_ID__" if self.is_artifact else self.name

    def file_mounts(self) -> list[dict[str, Any]]:
        """The native file mount that downloads an artifact image (none for registry images)."""
        if self.kind == "task-image":
            content: dict[str, Any] = {"artifact": self.path, "taskId": self.task_id}
        elif self.kind == "indexed-image":
            content = {"artifact": self.path, "namespace": self.namespace}
        else:
            return []
        mount: dict[str, Any] = {"content": content, "file": IMAGE_FILE}
        fmt = mount_format(self.path)
        if fmt:
            mount["format"] = fmt
        return [mount]

    def describe(self) -> str:
        """A human description for logs."""
        if self.kind == "task-image":
            return f"artifact {self.path} of task {self.task_id}"
        if self.kind == "indexed-image":
            return f"artifact {self.path} of indexed task {self.namespace}"
        return self.name


def mount_format(path: str) -> str:
    """The file mount's `format` for an image artifact path: only what docker cannot read itself."""
    dot = path.rfind(".")
    ext = path[dot:].lower() if dot > path.rfind("/") else ""
    fmt = _EXTENSION_FORMATS.get(ext, "")
    return "" if fmt in _DOCKER_READS else fmt


def image_spec(image: Any) -> ImageSpec:
    """The `ImageSpec` of a schema-valid payload `image`; raises `InvalidImage` for a bad name."""
    if isinstance(image, str):
        _check_reference(image)
        return ImageSpec("docker-image", name=image)
    kind = image["type"]
    if kind == "docker-image":
        _check_reference(image["name"])
        return ImageSpec(kind, name=image["name"])
    if kind == "indexed-image":
        return ImageSpec(kind, namespace=image["namespace"], path=image["path"])
    return ImageSpec(kind, task_id=image["taskId"], path=image["path"])


def _check_reference(name: str) -> None:
    if not _REFERENCE.match(name):
        raise InvalidImage(f"invalid image name {name!r}: invalid reference format")
