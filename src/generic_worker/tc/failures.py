"""Classifying what the official client raises, so callers can map it to a task resolution.

Quirk of taskcluster 113 (deps.md §1.5): after exhausting retries on 5xx the aio client raises
the raw `aiohttp.ClientResponseError`, while 4xx raise `TaskclusterRestFailure`; connection
problems raise `TaskclusterConnectionError`. Callers catch `TC_ERRORS` and ask `http_status`.
"""

from __future__ import annotations

import asyncio
import re

import aiohttp
import taskcluster.exceptions as tcex

TC_ERRORS: tuple[type[BaseException], ...] = (
    tcex.TaskclusterFailure,
    aiohttp.ClientError,
    asyncio.TimeoutError,
)
"""Everything a Taskcluster API call may raise that is not a bug of ours."""


def http_status(error: BaseException) -> int | None:
    """The HTTP status of a failed call, or None for connection problems and timeouts."""
    if isinstance(error, tcex.TaskclusterRestFailure):
        status = getattr(error, "status_code", None)
        return int(status) if status is not None else None
    if isinstance(error, aiohttp.ClientResponseError):
        return int(error.status)
    return None


_SECRET_QUERY = re.compile(
    r"(?i)\b(signature|bewit|x-amz-signature|x-amz-credential|x-amz-security-token|sig)=[^&\s'\"<>]+"
)


_URL_QUERY = re.compile(r"(https?://[^\s?#'\"<>]+)\?[^\s#'\"<>]*")


def redact_url_secrets(text: str) -> str:
    """Drop URLs' query strings (presigned URLs and bewits carry signatures there) from a message.

    Signature-like parameters outside URLs are masked too.
    """
    text = _URL_QUERY.sub(r"\1", text)
    return _SECRET_QUERY.sub(lambda m: f"{m.group(1)}=[redacted]", text)


def describe(error: BaseException) -> str:
    """A one-line description of a failed call for logs (never includes credentials)."""
    status = http_status(error)
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = redact_url_secrets(text)
    return f"HTTP {status}: {text}" if status is not None else f"{type(error).__name__}: {text}"
