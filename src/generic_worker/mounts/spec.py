"""The payload's `mounts`, read into `MountSpec`s and checked before anything is mounted.

Problems here are the task definition's fault (`exception/malformed-payload`): artifact content
from a task outside `task.dependencies` (the seed's text), content that is not valid base64, and a
`format` this worker cannot handle. Paths and content are checked again when mounting, where a
problem is a failed task.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from generic_worker.mounts.errors import MountError
from generic_worker.mounts.sources import ArtifactSource, Source, parse_content
from generic_worker.payload.model import Mount, MountKind, mount_kind


class MalformedMounts(Exception):
    """The mounts cannot be used as given; the message is the malformed-payload text."""


@dataclass(frozen=True)
class MountSpec:
    """One mount as the payload asks for it."""

    kind: MountKind
    path: str
    cache_name: str | None
    source: Source | None
    format: str | None

    @property
    def description(self) -> str:
        """How unmount errors name the mount."""
        if self.kind == "writableDirectoryCache":
            return f"writable directory cache '{self.cache_name}' at {self.path}"
        if self.kind == "readOnlyDirectory":
            return f"read-only directory {self.path}"
        return f"file {self.path}"


def parse_mounts(mounts: Sequence[Mount], dependencies: Collection[str]) -> list[MountSpec]:
    """Read valid payload mounts; `MalformedMounts` with every problem found."""
    specs: list[MountSpec] = []
    problems: list[str] = []
    missing: list[str] = []
    for mount in mounts:
        kind = mount_kind(mount)
        content = mount.get("content")
        fmt: str | None = mount.get("format")
        try:
            source = parse_content(content) if content is not None else None
        except MountError as e:
            problems.append(f"[mounts] {e}")
            continue
        if isinstance(source, ArtifactSource) and source.task_id not in dependencies:
            if source.task_id not in missing:
                missing.append(source.task_id)
        path = str(mount["file"] if kind == "fileMount" else mount["directory"])  # type: ignore[typeddict-item]
        cache_name = str(mount["cacheName"]) if kind == "writableDirectoryCache" else None  # type: ignore[typeddict-item]
        specs.append(MountSpec(kind, path, cache_name, source, fmt))
    problems[:0] = [
        f"[mounts] task.dependencies needs to include {task_id} since one or more of its artifacts "
        "are mounted"
        for task_id in missing
    ]
    if problems:
        raise MalformedMounts("\n".join(problems))
    return specs


def cache_names(specs: Sequence[MountSpec]) -> list[str]:
    """The writable cache names, in payload order (each needs `generic-worker:cache:<name>`)."""
    return [s.cache_name for s in specs if s.cache_name is not None]
