import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    HttpUrl,
    StringConstraints,
    TypeAdapter,
    field_validator,
)

from telemetra.ingest.decode import BYTE_ORDERS, FORMAT_NAMES
from telemetra.ingest.schemas import RejectedReading
from telemetra.kit.schemas import Body, Name
from telemetra.sensors.schemas import SensorKey

MAX_TOPIC_LENGTH = 300
DEFAULT_INTERVAL_SECONDS = 60
DEFAULT_TIMEOUT_SECONDS = 10.0
MAX_HEADERS = 20
MASK = "********"
# RFC 9110 field names; values without CR, LF or other control characters.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
# Set by the HTTP client itself, or meaningless to send by hand.
_RESERVED_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "upgrade",
                     "te", "trailer", "keep-alive", "proxy-connection"}
_http_url = TypeAdapter(HttpUrl)


class ConnectorKind(StrEnum):
    http_pull = "http_pull"
    mqtt_topic = "mqtt_topic"


def check_http_url(value: str) -> str:
    """An absolute http(s) URL, kept as written (not normalised)."""
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("must not contain spaces or control characters")
    try:
        _http_url.validate_python(value)
    except ValueError:
        raise ValueError("must be an absolute http or https URL") from None
    return value


def check_topic_filter(value: str) -> str:
    """An MQTT topic filter (MQTT 5, 4.7): ``+`` is a whole level, ``#`` the whole last level,
    no NUL, valid UTF-8; not a ``$`` topic (those are the broker's, or shared subscriptions)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a topic must be valid UTF-8") from None
    if "\x00" in value:
        raise ValueError("a topic must not contain NUL")
    if value.startswith("$"):
        raise ValueError("topics starting with '$' are the broker's own")
    levels = value.split("/")
    for index, level in enumerate(levels):
        if "+" in level and level != "+":
            raise ValueError("'+' must occupy a whole topic level")
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise ValueError("'#' must be the whole last topic level")
    return value


def check_headers(value: dict[str, str] | None) -> dict[str, str] | None:
    """Header names and values an HTTP request may carry, at most ``MAX_HEADERS``."""
    if value is None:
        return None
    if len(value) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers")
    seen: set[str] = set()
    for name, text in value.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"{name[:100]!r} is not a header name")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"{name} is set by the client itself")
        if name.lower() in seen:
            raise ValueError(f"{name} is given twice")
        seen.add(name.lower())
        if len(text) > 4096 or any(not c.isprintable() for c in text):
            raise ValueError(f"the value of {name} must be printable, at most 4096 characters")
    return value


Url = Annotated[str, StringConstraints(min_length=1, max_length=2000),
                AfterValidator(check_http_url),
                Field(description="http or https URL to fetch (`http_pull` only)")]
Topic = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TOPIC_LENGTH),
                  AfterValidator(check_topic_filter),
                  Field(description="MQTT topic filter to subscribe to (`mqtt_topic` only); "
                                    "`+` and `#` wildcards allowed")]
Key = Annotated[SensorKey, Field(description="The sensor key of format 6 (byte) values; "
                                             "default `value`")]
Format = Annotated[Literal[FORMAT_NAMES], Field(
    description="The ingestion body the source sends (API.md bodies 1 to 6), or `auto`")]
ByteOrder = Annotated[Literal[BYTE_ORDERS], Field(description="Byte order of format 6 values")]
Interval = Annotated[int, Field(ge=1, le=86_400, description=(
    f"Seconds between fetches (`http_pull` only; default {DEFAULT_INTERVAL_SECONDS})"))]
Timeout = Annotated[float, Field(gt=0, le=120, description=(
    f"Seconds a pull may take in all, connecting to the last byte (`http_pull` only; "
    f"default {DEFAULT_TIMEOUT_SECONDS:g})"))]
Headers = Annotated[dict[str, str], AfterValidator(check_headers), Field(description=(
    "Request headers sent upstream (`http_pull` only), such as an API key: write-only, "
    "stored encrypted and shown masked; sending them replaces them all, null removes them"))]
MaxAge = Annotated[int, Field(ge=1, le=315_360_000, description=(
    "Readings older than this on arrival are tagged `too old`"))]


class ConnectorCreate(Body):
    name: Name
    kind: ConnectorKind
    device_id: int = Field(description="The device the data is stored for")
    url: Url | None = None
    topic: Topic | None = None
    key: Key | None = None
    format: Format = "auto"
    byte_order: ByteOrder = "little"
    interval_seconds: Interval | None = None
    timeout_seconds: Timeout | None = None
    headers: Headers | None = None
    max_age_seconds: MaxAge | None = None
    enabled: bool = True


class ConnectorUpdate(Body):
    # name, kind, device_id, format, byte_order and enabled may be left out (unchanged), not
    # be null. The result of the change is checked as a whole (a new kind needs its fields).
    name: Name = None
    kind: ConnectorKind = None
    device_id: int = None
    url: Url | None = None
    topic: Topic | None = None
    key: Key | None = None
    format: Format = None
    byte_order: ByteOrder = None
    interval_seconds: Interval | None = None
    timeout_seconds: Timeout | None = None
    headers: Headers | None = None
    max_age_seconds: MaxAge | None = None
    enabled: bool = None


class Connector(BaseModel):
    id: int
    organization_id: int
    name: str
    kind: ConnectorKind
    device_id: int
    url: str | None
    topic: str | None
    key: str | None
    format: Format
    byte_order: ByteOrder
    interval_seconds: int | None
    timeout_seconds: float | None
    headers: dict[str, str] | None = Field(description="The header names, values masked")
    max_age_seconds: int | None
    enabled: bool
    last_run_at: datetime | None = Field(description="When the last successful pull ended")
    last_result: "RunResult | None" = Field(description="What the last successful pull did")
    last_error: str | None = Field(description="Why the last pull failed; null after a success")
    created_at: datetime
    updated_at: datetime

    @field_validator("headers", mode="before")
    @classmethod
    def _masked(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return dict.fromkeys(value, MASK)
        return value


class RunResult(BaseModel):
    """What one pull did (``POST /connectors/{id}/run``, and ``last_result``)."""

    fetched: int = Field(description="Readings in the upstream's answer")
    stored: int = Field(description="Readings stored now")
    duplicates: int = Field(description="Readings already stored (by an earlier pull)")
    invalid: int = Field(description="Of those stored or already stored, how many are marked "
                                     "invalid (an invalid tag such as `too old`, out of range)")
    rejected: list[RejectedReading] = Field(description="Readings refused, with the reason")


Connector.model_rebuild()
