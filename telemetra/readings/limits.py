"""What one reading may be, beyond its format: the times it may have and how far its free-form
``meta`` may go (issue 9: a reading dated 2099 stayed every chart's latest value, and 600-deep
metadata failed a whole batch of other tenants' writes).

``telemetra.readings.decode`` applies these to every body; ``decode.screen`` to readings built
elsewhere (an import's lines).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

MAX_META_DEPTH = 16
MAX_META_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class ReadingLimits:
    """The times a reading may have (settings ``TELEMETRA_MIN_READING_TIME``,
    ``TELEMETRA_MAX_FUTURE_SECONDS``)."""

    min_time: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    max_future: timedelta = timedelta(seconds=300)

    @property
    def too_early(self) -> str:
        return "before " + self.min_time.astimezone(UTC).isoformat().replace("+00:00", "Z")


DEFAULT_LIMITS = ReadingLimits()


class Refused(Exception):
    """One reading may not be stored, for ``reason`` (said to the client)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def checked_meta(meta: dict, name: str) -> dict:
    """``meta`` (a non-empty object) if it is within the bounds. The encoded text answers the
    common case at C speed: its size, and whether it has brackets or NUL escapes enough to be
    worth the exact walk (brackets or ``\\u0000`` inside strings only make the walk happen)."""
    try:
        encoded = orjson.dumps(meta)
    except TypeError as exc:  # past orjson's 254 levels, or a lone surrogate (json fallback)
        if "recursion" in str(exc).lower():
            raise Refused(f"{name} nested deeper than {MAX_META_DEPTH} levels") from None
        raise Refused(f"invalid {name}: {exc}") from None
    if len(encoded) > MAX_META_BYTES:
        raise Refused(f"{name} larger than {MAX_META_BYTES // 1024} KiB")
    if (encoded.count(b"{") + encoded.count(b"[") > MAX_META_DEPTH
            or (b"\\" in encoded and b"\\u0000" in encoded)):
        _walk_meta(meta, 1, name)
    return meta


def _walk_meta(value: Any, depth: int, name: str) -> None:
    if depth > MAX_META_DEPTH:
        raise Refused(f"{name} nested deeper than {MAX_META_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise Refused(f"NUL character in {name}")
            if isinstance(item, (dict, list)):
                _walk_meta(item, depth + 1, name)
            elif isinstance(item, str) and "\x00" in item:
                raise Refused(f"NUL character in {name}")
    else:
        for item in value:
            if isinstance(item, (dict, list)):
                _walk_meta(item, depth + 1, name)
            elif isinstance(item, str) and "\x00" in item:
                raise Refused(f"NUL character in {name}")
