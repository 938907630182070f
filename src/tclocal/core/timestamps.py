"""Time as tc-local stores it (epoch seconds) and as the API speaks it (RFC 3339, milliseconds, Z)."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> float:
    """Return the current time in epoch seconds (the only clock tc-local reads)."""
    return time.time()


def to_iso(epoch: float) -> str:
    """Format epoch seconds as Taskcluster does: `2017-01-25T23:31:13.787Z` (milliseconds, UTC)."""
    millis = round(epoch * 1000)
    dt = datetime.fromtimestamp(millis // 1000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"


def parse_iso(text: str) -> float:
    """Parse an RFC 3339 timestamp into epoch seconds; raise ValueError when it is not one.

    A timestamp without an offset is taken as UTC, as JavaScript's `new Date()` does for the
    `...Z`-less forms Taskcluster clients sometimes send.
    """
    dt = datetime.fromisoformat(text.upper())  # RFC 3339 allows a lower-case `t` and `z`
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def normalize_iso(text: str) -> str:
    """Re-encode a timestamp in the canonical millisecond form (so idempotency compares equal)."""
    return to_iso(parse_iso(text))


def from_now(seconds: float) -> str:
    """Return the canonical timestamp `seconds` from now (negative for the past)."""
    return to_iso(now() + seconds)
