"""A d2g task: its translation, set by payload validation, and what the d2g feature learns running it.

`D2GTask` is what `TaskRun.d2g` holds. Its contract with the chain-of-trust feature:
`original_payload` and `original_scopes` are the docker-worker definition's (the certificate
carries `TaskRun.definition`, which d2g never changes); `chain_of_trust_environment()`
(`imageHash`, plus `imageArtifactHash` for artifact images) goes into the worker-written part of
the certificate's `environment`, so the task cannot override it. It is also written to
`<task dir>/chain-of-trust-additional-data.json` as upstream does (as the task user).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generic_worker.d2g.translate import Translation

COT_ADDITIONAL_DATA = "chain-of-trust-additional-data.json"


@dataclass
class D2GTask:
    """One d2g task run's translation and run-time facts."""

    translation: Translation
    original_payload: dict[str, Any]
    original_scopes: list[str]
    image_id: str = ""
    """The loaded image's id (`sha256:...`), set once the image is ready."""
    image_hash: str = ""
    """`docker inspect` id of the image (chain of trust `environment.imageHash`)."""
    image_artifact_hash: str = ""
    """SHA-256 hex of the image artifact (task and indexed images only)."""
    notes: list[str] = field(default_factory=list)

    @property
    def container_name(self) -> str:
        """The container's name (`taskcontainer_<slug>`)."""
        return self.translation.container_name

    def chain_of_trust_environment(self) -> dict[str, str]:
        """What d2g adds to the certificate's `environment` (empty until the image is ready)."""
        extra: dict[str, str] = {}
        if self.image_hash:
            extra["imageHash"] = self.image_hash
        if self.image_artifact_hash:
            extra["imageArtifactHash"] = f"sha256:{self.image_artifact_hash}"
        return extra

    def chain_of_trust_data(self) -> bytes:
        """Upstream's `chain-of-trust-additional-data.json` content."""
        return json.dumps({"environment": self.chain_of_trust_environment()}).encode()


def write_task_file(path: Path, data: bytes) -> None:
    """Create or replace the regular file `path` with `data`, never through a symlink at its name.

    Called with the task user's rights (`TaskRun.as_task_user`) for files the worker writes into
    a task directory the task user owns, so nothing the task placed there can redirect the write.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
