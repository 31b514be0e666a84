"""What one reading may be, beyond its format: the times it may have and how far its free-form
``meta`` may go (issue 9: a reading dated 2099 stayed every chart's latest value, and 600-deep
metadata failed a whole batch of other tenants' writes).

``telemetra.ingest.decode`` applies these to every body; ``decode.screen`` to readings built
elsewhere (an import's lines).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from telemetra.kit.schemas import MAX_FREE_FORM_BYTES, MAX_FREE_FORM_DEPTH, free_form_fault

# A reading's meta is a free-form value like any other (kit.schemas).
MAX_META_DEPTH = MAX_FREE_FORM_DEPTH
MAX_META_BYTES = MAX_FREE_FORM_BYTES


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
    """``meta`` (a non-empty object) if it is within the free-form bounds, else ``Refused``."""
    fault = free_form_fault(meta)
    if fault is None:
        return meta
    if fault == "deep":
        raise Refused(f"{name} nested deeper than {MAX_META_DEPTH} levels")
    if fault == "large":
        raise Refused(f"{name} larger than {MAX_META_BYTES // 1024} KiB")
    if fault == "nul":
        raise Refused(f"NUL character in {name}")
    raise Refused(f"invalid {name}{fault.removeprefix('invalid')}")  # not encodable
