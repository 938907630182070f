"""Taskcluster timestamps: RFC 3339, UTC, millisecond precision, `Z` (e.g. 2017-01-25T23:31:13.787Z).

The official client's `stringDate` gives microseconds; the services and the seed's logs use
milliseconds, so we format ourselves.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def to_tc(when: datetime) -> str:
    """Format an aware datetime as a Taskcluster timestamp."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_tc(text: str) -> datetime:
    """Parse a Taskcluster (RFC 3339) timestamp into an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def go_duration(delta: timedelta | float) -> str:
    """A duration the way Go prints `time.Duration` (`1.234567s`, `2m3.5s`, `1h0m0s`), as the seed logs it."""
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 1:
        micros = seconds * 1e6
        if micros < 1:
            return f"{sign}{round(seconds * 1e9)}ns"
        if micros < 1000:
            return f"{sign}{_trim(f'{micros:.3f}')}µs"
        return f"{sign}{_trim(f'{micros / 1000:.6f}')}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = _trim(f"{secs:.9f}") + "s"
    if hours:
        return f"{sign}{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{sign}{int(minutes)}m{text}"
    return sign + text


def _trim(number: str) -> str:
    return number.rstrip("0").rstrip(".") if "." in number else number
