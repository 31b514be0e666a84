"""What the MQTT consumer reads from a message, and what it counts: pure, no I/O."""

from collections import Counter
from dataclasses import dataclass, field

from pydantic import ValidationError

from telemetra.ingest.decode import decode_body, parse_json
from telemetra.ingest.limits import DEFAULT_LIMITS, ReadingLimits
from telemetra.kit.body import MAX_JSON_DEPTH, too_deep
from telemetra.kit.errors import Invalid


class Rejected(Exception):
    """A message that cannot be used: logged, counted, acknowledged."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class TopicConnector:
    """An ``mqtt_topic`` connector: messages on ``topic`` are readings of ``device_id``."""

    id: int
    device_id: int
    topic: str
    key: str | None
    format: str
    byte_order: str
    max_age_seconds: int | None


@dataclass
class Counters:
    received: int = 0
    handled: int = 0
    readings_accepted: int = 0
    readings_duplicate: int = 0
    readings_rejected: int = 0
    retries: int = 0
    rejected: Counter = field(default_factory=Counter)           # reason -> messages
    rejected_by_device: Counter = field(default_factory=Counter)  # device id -> messages

    def as_dict(self) -> dict:
        return {"received": self.received, "handled": self.handled,
                "readings_accepted": self.readings_accepted,
                "readings_duplicate": self.readings_duplicate,
                "readings_rejected": self.readings_rejected, "retries": self.retries,
                "rejected_messages": sum(self.rejected.values()),
                "rejected_by_reason": dict(self.rejected),
                "rejected_by_device": {str(k): v for k, v in self.rejected_by_device.items()}}


def decode(body, limits: ReadingLimits = DEFAULT_LIMITS) -> tuple[list, list]:
    try:
        return decode_body(body, limits=limits)
    except Invalid as invalid:
        raise Rejected(f"unknown format: {invalid.detail}") from None


def json_body(payload: bytes):
    if too_deep(payload):  # before any parser or validator recurses into it
        raise Rejected(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return parse_json(payload)
    except Invalid:
        raise Rejected("invalid JSON") from None


def first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]


def reason_kind(reason: str) -> str:
    """The counter a reason goes to: its words before any detail."""
    for kind in ("payload too large", "invalid JSON", "unknown format", "unknown device",
                 "not a platform topic", "invalid heartbeat", "invalid log lines"):
        if reason.startswith(kind):
            return kind
    if reason.startswith("device ") and reason.endswith("inactive"):
        return "inactive device"
    return reason if len(reason) <= 60 else "other"


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` one level, ``#`` the rest)."""
    filter_parts = topic_filter.split("/")
    topic_parts = topic.split("/")
    for index, part in enumerate(filter_parts):
        if part == "#":
            return True
        if index >= len(topic_parts) or (part != "+" and part != topic_parts[index]):
            return False
    return len(filter_parts) == len(topic_parts)
