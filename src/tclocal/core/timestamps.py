"""Time as tc-local stores it (epoch seconds) and as the API speaks it (RFC 3339, milliseconds, Z)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def now() -> float:
    """Return the current time in epoch seconds, at millisecond precision (the only clock read).

    Upstream's times are JavaScript `Date`s: whole milliseconds. Keeping every stored time on a
    millisecond makes a time tc-local wrote and the same time read back compare equal.
    """
    return (time.time_ns() // 1_000_000) / 1000


def to_iso(epoch: float) -> str:
    """Format epoch seconds as Taskcluster does: `2017-01-25T23:31:13.787Z` (milliseconds, UTC)."""
    millis = round(epoch * 1000)
    dt = datetime.fromtimestamp(millis // 1000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"


def parse_iso(text: str) -> float:
    """Parse an RFC 3339 timestamp into epoch seconds; raise ValueError when it is not one.

    A timestamp without an offset is taken as UTC, as JavaScript's `new Date()` does for the
    `...Z`-less forms Taskcluster clients sometimes send. Digits past the millisecond are
    dropped, as `new Date()` drops them: upstream compares and stores dates at millisecond
    precision, so `...00.679315Z` and `...00.679Z` are the same instant to it (and here).
    """
    dt = datetime.fromisoformat(text.upper())  # RFC 3339 allows a lower-case `t` and `z`
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return ((dt - _EPOCH) // _MILLISECOND) / 1000


def normalize_iso(text: str) -> str:
    """Re-encode a timestamp in the canonical millisecond form (so idempotency compares equal)."""
    return to_iso(parse_iso(text))


def from_now(seconds: float) -> str:
    """Return the canonical timestamp `seconds` from now (negative for the past)."""
    return to_iso(now() + seconds)
