"""What the MQTT consumer reads from a message, and what it counts: pure, no I/O."""

from collections import Counter
from dataclasses import dataclass, field

from pydantic import ValidationError

from telemetra.ingest.decode import parse_json
from telemetra.ingest.ingest import Source
from telemetra.kit.body import MAX_JSON_DEPTH, too_deep
from telemetra.kit.errors import Invalid

# A body none of whose readings can be stored (``ingest.NothingStored``): counted under this.
NOTHING_STORED = "no reading of the body can be stored"


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

    @property
    def source(self) -> Source:
        """How the ingestor reads this connector's bodies."""
        return Source(value_key=self.key or "value", byte_order=self.byte_order,
                      expect=self.format, max_age_seconds=self.max_age_seconds,
                      strict=False)


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


QUOTA_EXCEEDED = "over the daily readings quota"  # telemetra.ingest.ingest.OverDailyQuota


def reason_kind(reason: str) -> str:
    """The counter a reason goes to: its words before any detail."""
    for kind in ("payload too large", "invalid JSON", "unknown format", "unknown field",
                 "unknown device", "not a platform topic", "invalid heartbeat",
                 "invalid log lines", NOTHING_STORED, QUOTA_EXCEEDED):
        if reason.startswith(kind):
            return kind
    if reason.startswith("device ") and reason.endswith("inactive"):
        return "inactive device"
    return reason if len(reason) <= 60 else "other"
