"""Our docker-worker payload schema against upstream's (../shared): the same interface.

Everything but prose and ids must match: property names at every level, types, required keys,
enums, formats, limits, additionalProperties, defaults and $refs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from generic_worker.d2g.prepare import docker_worker_schema
from tests.payload.test_payload_upstream import differences, interface

UPSTREAM = Path("/work/shared/reference/schemas/modern/docker-worker-payload-v1.yml")


@pytest.mark.skipif(not UPSTREAM.is_file(), reason="upstream reference not present")
def test_docker_worker_schema_matches_upstream() -> None:
    theirs = interface(yaml.safe_load(UPSTREAM.read_text()))
    ours = interface(docker_worker_schema())
    assert differences(ours, theirs) == []
