"""Plain, typed values the SDK hands back (dataclasses), and the time conversions they use."""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Value = float | int | bool
TimeLike = datetime | float | int | str


def utc(value: datetime | float | int) -> datetime:
    """An aware UTC datetime from a datetime (naive means UTC) or epoch seconds."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.fromtimestamp(float(value), UTC)


def iso(value: datetime) -> str:
    """ISO 8601 with microseconds and ``Z``, as the platform writes times."""
    return utc(value).isoformat(timespec="microseconds").replace("+00:00", "Z")


def query_time(value: TimeLike) -> str:
    """A time for a query parameter: datetimes as ISO 8601, numbers as epoch seconds, strings
    (``now``, ``-1h``, ISO 8601) as given."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(float(value))
    return str(value)


def parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class Measurement:
    """One value of one sensor at one time, as a device records it. ``ts`` is set when the
    value is recorded and never changes, however often sending it is retried."""

    key: str
    value: Value
    ts: datetime
    unit: str | None = None
    tags: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"key": self.key, "value": self.value, "ts": iso(self.ts)}
        if self.unit is not None:
            body["unit"] = self.unit
        if self.tags:
            body["tags"] = list(self.tags)
        return body


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    reason: str
    key: str | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """What a flush achieved. Over HTTP the platform's counts; over MQTT the broker took
    ``sent`` readings (QoS 1) and the platform stores them on its own, so ``accepted`` and
    ``duplicates`` are None."""

    sent: int = 0
    accepted: int | None = 0
    duplicates: int | None = 0
    rejected: tuple[Rejection, ...] = ()

    def __add__(self, other: "SendResult") -> "SendResult":
        def total(a, b):
            return None if a is None or b is None else a + b

        return SendResult(self.sent + other.sent, total(self.accepted, other.accepted),
                          total(self.duplicates, other.duplicates),
                          self.rejected + other.rejected)


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    device_id: int
    status: str
    online: bool
    last_seen: datetime | None

    @classmethod
    def from_json(cls, data: dict) -> "DeviceStatus":
        return cls(data["device_id"], data["status"], data["online"],
                   parse_time(data.get("last_seen")))


@dataclass(frozen=True, slots=True)
class Command:
    """A command from the platform to a device. Answer it with ``DeviceClient.report``."""

    id: int
    device_id: int
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    status: str = "delivered"
    result: Any = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    delivered_at: datetime | None = None
    completed_at: datetime | None = None

    @classmethod
    def from_json(cls, data: dict) -> "Command":
        return cls(id=data["id"], device_id=data["device_id"], name=data["name"],
                   params=data.get("params") or {}, status=data.get("status", "delivered"),
                   result=data.get("result"), created_at=parse_time(data.get("created_at")),
                   expires_at=parse_time(data.get("expires_at")),
                   delivered_at=parse_time(data.get("delivered_at")),
                   completed_at=parse_time(data.get("completed_at")))


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    """A device and its key, as registering (or rotating the key of) a device answers: the
    key is shown this once."""

    id: int
    name: str
    api_key: str


@dataclass(frozen=True, slots=True)
class Reading:
    id: str
    sensor_id: int
    device_id: int
    key: str
    ts: datetime
    value: float
    unit: str | None
    valid: bool
    status: str
    tags: list[str] | None = None
    meta: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, data: dict) -> "Reading":
        return cls(id=data["id"], sensor_id=data["sensor_id"], device_id=data["device_id"],
                   key=data["key"], ts=datetime.fromisoformat(data["ts"]), value=data["value"],
                   unit=data.get("unit"), valid=data["valid"], status=data["status"],
                   tags=data.get("tags"), meta=data.get("meta"))


@dataclass(frozen=True, slots=True)
class AggregateRow:
    """One sensor's bucket; only the functions asked for are set."""

    sensor_id: int
    device_id: int
    key: str
    bucket: datetime
    avg: float | None = None
    min: float | None = None
    max: float | None = None
    sum: float | None = None
    count: int | None = None
    first: float | None = None
    last: float | None = None

    @classmethod
    def from_json(cls, data: dict) -> "AggregateRow":
        return cls(**{**data, "bucket": datetime.fromisoformat(data["bucket"])})
