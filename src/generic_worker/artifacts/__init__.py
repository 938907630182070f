"""Task artifacts: resolving payload entries into artifacts and uploading them to the queue.

- `model`: the artifact kinds (file, reference, link, error) and the record of uploads;
- `content`: content-type guessing and the default content encoding;
- `resolve`: payload entries -> artifacts, with the task-directory containment checks;
- `upload`: `ArtifactUploader` (createArtifact, transfer, error -> resolution mapping);
- `transfer` / `objects`: streaming PUT and the object-service protocol;
- `compression` / `log_gzip`: gzip copies (ISA-L, all cores), and the backing log's copy made
  while the task writes it.
"""

from generic_worker.artifacts.content import default_content_encoding, guess_content_type
from generic_worker.artifacts.log_gzip import LogGzip
from generic_worker.artifacts.model import (
    Artifact,
    ErrorArtifact,
    ErrorReason,
    FileArtifact,
    LinkArtifact,
    ReferenceArtifact,
    UploadedArtifact,
)
from generic_worker.artifacts.resolve import resolve_payload_artifacts
from generic_worker.artifacts.upload import ArtifactUploader

__all__ = [
    "Artifact",
    "ArtifactUploader",
    "ErrorArtifact",
    "ErrorReason",
    "FileArtifact",
    "LinkArtifact",
    "LogGzip",
    "ReferenceArtifact",
    "UploadedArtifact",
    "default_content_encoding",
    "guess_content_type",
    "resolve_payload_artifacts",
]
