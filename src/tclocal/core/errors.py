"""API errors with upstream's codes, HTTP statuses and JSON body shape."""

from __future__ import annotations

import json
from typing import Any

from tclocal.core.timestamps import now, to_iso

# Upstream's error codes (libraries/api) and their HTTP statuses, plus the object service's own.
ERROR_STATUS: dict[str, int] = {
    "MalformedPayload": 400,
    "InvalidRequestArguments": 400,
    "InputValidationError": 400,
    "InputError": 400,
    "NoMatchingBackend": 400,
    "AuthenticationFailed": 401,
    "InsufficientScopes": 403,
    "ResourceNotFound": 404,
    "NoMatchingMethod": 406,
    "RequestConflict": 409,
    "ResourceExpired": 410,
    "InputTooLarge": 413,
    "InternalServerError": 500,
}


class APIError(Exception):
    """An error reply: raised anywhere below a handler, rendered by the dispatcher."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        if code not in ERROR_STATUS:
            raise ValueError(f"unknown error code {code}")
        self.code = code
        self.message = message
        self.details = details

    @property
    def status(self) -> int:
        """The HTTP status upstream uses for this error code."""
        return ERROR_STATUS[self.code]


def _fill(message: str, details: dict[str, Any]) -> str:
    """Substitute `{{key}}` placeholders from details, as upstream's reportError does."""
    for key, value in details.items():
        text = value if isinstance(value, str) else json.dumps(value, indent=2)
        message = message.replace("{{" + key + "}}", text)
    return message


OMITTED = "(OMITTED)"
"""What upstream's `cleanPayload` functions put in place of a secret in an error's `requestInfo`."""


def error_body(err: APIError, method: str, params: dict[str, str], payload: Any) -> dict[str, Any]:
    """Build upstream's error JSON: `{code, message, requestInfo: {method, params, payload, time}}`.

    `payload` is echoed as given: an endpoint whose body holds a secret cleans it first (its
    `clean_payload`, as upstream's per-endpoint `cleanPayload`).
    """
    time = to_iso(now())
    message = _fill(err.message, err.details) + "\n".join(
        [
            "\n\n---\n",
            f"* method:     {method}",
            f"* errorCode:  {err.code}",
            f"* statusCode: {err.status}",
            f"* time:       {time}",
        ]
    )
    return {
        "code": err.code,
        "message": message,
        "requestInfo": {"method": method, "params": params, "payload": payload, "time": time},
    }
