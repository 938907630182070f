"""After the contract tests: which upstream response schemas their responses were checked against.

Runs last in this directory (by name). Every response a contract test received through a
`Checked` client was validated against upstream's output schema; this asserts that the schemas
present upstream for the endpoints tc-local implements were all exercised.
"""

from __future__ import annotations

import pytest

from .upstream import CHECKED, HAVE_SCHEMAS

EXPECTED = {
    "/schemas/queue/v1/task.json",
    "/schemas/queue/v1/task-status-response.json",
    "/schemas/queue/v1/claim-work-response.json",
    "/schemas/queue/v1/task-reclaim-response.json",
    "/schemas/queue/v1/post-artifact-response.json",
    "/schemas/queue/v1/get-artifact-response.json",
    "/schemas/queue/v1/list-artifacts-response.json",
    "/schemas/queue/v1/artifact-response.json",
    "/schemas/queue/v1/artifact-content-response.json",
    "/schemas/object/v1/create-upload-response.json",
    "/schemas/object/v1/download-object-response.json",
    "/schemas/object/v1/get-object-response.json",
    "/schemas/purge-cache/v1/purge-cache-request-list.json",
    "/schemas/secrets/v1/secret.json",
    "/schemas/index/v1/indexed-task-response.json",
    "/schemas/auth/v1/scopeset.json",
    "/schemas/auth/v1/websocktunnel-token-response.json",
    "/schemas/worker-manager/v1/register-worker-response.json",
    "/schemas/worker-manager/v1/reregister-worker-response.json",
    "/schemas/worker-manager/v1/should-worker-terminate-response.json",
    "/schemas/worker-manager/v1/worker-full.json",
}


@pytest.mark.skipif(not HAVE_SCHEMAS, reason="upstream schemas not present")
def test_every_upstream_response_schema_was_checked() -> None:
    if len(CHECKED) < 5:
        pytest.skip("run together with the contract tests to measure coverage")
    assert EXPECTED <= CHECKED, sorted(EXPECTED - CHECKED)
