from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, HttpUrl, StringConstraints, TypeAdapter

from telemetra.ingest.decode import BYTE_ORDERS, FORMAT_NAMES
from telemetra.kit.schemas import Body, Name
from telemetra.sensors.schemas import SensorKey

MAX_TOPIC_LENGTH = 300
DEFAULT_INTERVAL_SECONDS = 60
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
    max_age_seconds: int | None
    enabled: bool
    last_run_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
