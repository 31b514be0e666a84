"""Timestamps in: ISO 8601 (naive means UTC), epoch seconds or milliseconds, relative forms.

A number below 1e11 is epoch seconds, otherwise milliseconds (1e11 s is the year 5138, while
1e11 ms is 1973). Relative forms, for query parameters: ``now``, ``-30s``, ``-15m``, ``-1h``,
``-7d``, ``-2w``. Anything else is an ``Invalid`` naming the accepted forms, never a default.
"""

import math
import re
from datetime import UTC, datetime, timedelta

from telemetra.kit.errors import Invalid
from telemetra.kit.timeutil import utcnow

EPOCH_MS_THRESHOLD = 1e11
_RELATIVE = re.compile(r"^-(\d{1,9})(s|m|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
ACCEPTED = ("ISO 8601 (e.g. 2026-01-31T12:00:00Z), epoch seconds or milliseconds, "
            "or now, -30s, -15m, -1h, -7d, -2w")


def from_epoch(value: float) -> datetime:
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    seconds = value / 1000 if abs(value) >= EPOCH_MS_THRESHOLD else value
    return datetime.fromtimestamp(seconds, tz=UTC)


def parse_timestamp(value: object) -> datetime:
    """A body's timestamp: ISO 8601 string or epoch number. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, (int, float)):
        return from_epoch(float(value))
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.match(text):
            return from_epoch(float(text))
        parsed = datetime.fromisoformat(text)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise ValueError(f"expected a time, got {type(value).__name__}")


def relative_seconds(text: str) -> int | None:
    """How far back a relative form (``-30s``, ``-15m``, ``-1h``, ``-7d``, ``-2w``) reaches,
    in seconds; None for anything else."""
    match = _RELATIVE.match(text.strip())
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_query_time(value: str, *, name: str = "time", now: datetime | None = None) -> datetime:
    """A query parameter's time, including the relative forms."""
    text = value.strip()
    if text == "now":
        return now or utcnow()
    seconds = relative_seconds(text)
    if seconds is not None:
        return (now or utcnow()) - timedelta(seconds=seconds)
    try:
        return parse_timestamp(text)
    except (ValueError, OverflowError, OSError):
        raise Invalid(f"{name}: {value!r} is not a time; use {ACCEPTED}",
                      loc=["query", name]) from None
