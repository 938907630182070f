"""worker-manager's URL parameters and request-body schemas, after upstream's `schemas/worker-manager/v1`.

A test compares the ones upstream publishes in the reference set (register, reregister and
report-worker-error requests) with upstream's files; the worker-pool requests follow upstream's
`create-worker-pool-request.yml` and `update-worker-pool-request.yml`.
"""

from __future__ import annotations

import re
from typing import Any

from tclocal.core.validation import DATE_TIME, IDENTIFIER, Validator, obj

WORKER_POOL_ID = r"^[a-zA-Z0-9-_]{1,38}/[a-z]([-a-z0-9]{0,36}[a-z0-9])?$"
SECRET = r"^[a-zA-Z0-9_-]{44}$"
IDENT: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 38, "pattern": IDENTIFIER}
POOL_ID: dict[str, Any] = {"type": "string", "pattern": WORKER_POOL_ID}

# Upstream's `params` for this service: a mismatch is 400 InvalidRequestArguments.
PARAMS: dict[str, re.Pattern[str]] = {
    "workerPoolId": re.compile(WORKER_POOL_ID),
    "workerGroup": re.compile(r"^([a-zA-Z0-9-_]{1,38})$"),
    "workerId": re.compile(r"^([a-zA-Z0-9-_]{1,38})$"),
}

_POOL_FIELDS: dict[str, Any] = {
    "providerId": IDENT,
    "description": {"type": "string", "maxLength": 10240},
    "config": {"type": "object", "additionalProperties": True},
    "owner": {"type": "string", "format": "email"},
    "emailOnError": {"type": "boolean"},
}
_POOL_REQUIRED = ["providerId", "description", "config", "owner", "emailOnError"]

CREATE_WORKER_POOL = Validator(obj(_POOL_REQUIRED, **_POOL_FIELDS))

# `workerPoolId`, `created` and `lastModified` are accepted so that a `workerPool` reply can be
# written back; the id must be right, the two dates are ignored.
UPDATE_WORKER_POOL = Validator(
    obj(_POOL_REQUIRED, **_POOL_FIELDS, workerPoolId=POOL_ID, created=DATE_TIME, lastModified=DATE_TIME)
)

_PROOFS = [
    obj(["token"], token={"type": "string"}),
    obj(["staticSecret"], staticSecret={"type": "string", "pattern": SECRET}),
    obj(["document", "signature"], document={"type": "string"}, signature={"type": "string"}),
    obj(["document"], document={"type": "string"}),
]

REGISTER_WORKER = Validator(
    obj(
        ["workerPoolId", "providerId", "workerGroup", "workerId", "workerIdentityProof"],
        workerPoolId=POOL_ID,
        providerId=IDENT,
        workerGroup=IDENT,
        workerId=IDENT,
        workerIdentityProof={"oneOf": _PROOFS},
        systemBootTime=DATE_TIME,
    )
)

REREGISTER_WORKER = Validator(
    obj(
        ["workerPoolId", "workerGroup", "workerId", "secret"],
        workerPoolId=POOL_ID,
        workerGroup=IDENT,
        workerId=IDENT,
        secret={"type": "string", "pattern": SECRET},
    )
)

REPORT_WORKER_ERROR = Validator(
    obj(
        ["workerGroup", "workerId", "kind", "title", "description", "extra"],
        workerGroup=IDENT,
        workerId=IDENT,
        kind={"type": "string", "maxLength": 128, "pattern": "[-a-z0-9]+"},
        title={"type": "string", "maxLength": 128},
        description={"type": "string", "maxLength": 10240},
        extra={"type": "object", "additionalProperties": True},
    )
)

_LIFECYCLE = {
    "type": "object",
    # Upstream's worker-lifecycle.yml: a maximum, no minimum.
    "properties": {"reregistrationTimeout": {"type": "integer", "maximum": 2592000}},
    "additionalProperties": False,
}

# A `static` pool's config: upstream's config-static.yml (checked on the whole request body, so
# problems are reported as `config/...`). A static worker's secret is the worker's own, given
# to createWorker; the pool holds none.
STATIC_CONFIG = Validator(
    {
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "properties": {"lifecycle": _LIFECYCLE, "workerConfig": {"type": "object"}},
                "additionalProperties": False,
            }
        },
    }
)

# What tc-local reads from the config of a pool with any other providerId (it treats every pool
# as static): anything else in `config` is kept and ignored, as for a provider tc-local does not run.
POOL_CONFIG = Validator(
    {
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "properties": {"workerConfig": {"type": "object"}, "lifecycle": _LIFECYCLE},
            }
        },
    }
)

# createWorker and updateWorker: upstream's create-worker-request.yml.
CREATE_WORKER = Validator(
    obj(
        ["expires"],
        expires=DATE_TIME,
        capacity={"type": "integer", "minimum": 1},
        providerInfo={
            "oneOf": [obj(["staticSecret"], staticSecret={"type": "string", "pattern": SECRET})],
        },
    )
)
