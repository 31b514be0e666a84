"""Decode every accepted ingestion body into the same normalised readings.

Pure functions, no I/O: the HTTP endpoint, the MQTT consumer, connectors and the importer all
call ``decode_body``. A body that is none of the formats is an ``Invalid`` (422); a reading that
is wrong (string value, non-finite number, bad bytes, bad time...) is rejected alone, with a
reason, and the others go on.

The bodies (API.md, "Ingestion"), with their names in ``FORMAT_NAMES``:
1. ``keys``: ``{"temperature": 23.5, "humidity": 60}``
2. ``values``: ``{"ts": <time>, "values": {...}}`` and a list of those
3. ``data``: ``{"data": {...}, "metadata": {...}, "timestamp"?: <time>}``
4. ``readings``: ``{"readings": [{"sensor_type" or "key", "value", "unit"?, "ts"?, "tags"?}]}``
5. ``sensor_type``: ``{"sensor_type": "temperature", "value": 22.5, "unit": "°C"}`` and a list
6. ``bytes``: ``{"time": <epoch>, "value": [b0, b1, b2, b3], "tags": [...]}`` and a list: an
   IEEE-754 float32 in four bytes, little-endian unless the source says otherwise.
7. ``sensor_id``: ``{"sensor_id": 12, "value": 22.5, "timestamp"?, "unit"?, "tags"?}`` and a
   list: a reading of an existing sensor by its id (``Reading.sensor_id``; whose sensor it may
   be is the ingestor's to decide).
Body 1 never takes the formats' field names (``FIELD_NAMES``) as sensor keys: each is rejected
with the reason, so ``{"value": 3, "unit": "C"}`` stores nothing.
A source that always sends one of them (a connector) may insist on it (``expect``); ``auto``
accepts any.

A field that none of the formats has is refused, naming it (API.md, "Strict input"): the body
when it is one object, the item alone in a list (``strict``; connectors read leniently).
What storage cannot hold, or should not, is refused here too, per reading (API.md): times out
of ``ReadingLimits``, NUL characters, ``meta`` past its bounds (``telemetra.ingest.limits``).
"""

import json
import math
import re
import struct
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson

from telemetra.ingest.limits import DEFAULT_LIMITS, ReadingLimits, Refused, checked_meta
from telemetra.kit.errors import Invalid
from telemetra.kit.timeparse import parse_timestamp
from telemetra.kit.timeutil import utcnow

MAX_KEY_LENGTH = 100
MAX_TAGS = 20
MAX_TAG_LENGTH = 100
_KEY = re.compile(r"^[A-Za-z0-9_.:/ -]{1,100}$")
# The bodies by name, in the order of API.md; a source (a connector) may insist on one.
_SHAPES = {
    "keys": '{"<key>": <number>, ...}',
    "values": '{"ts", "values": {...}} or a list of those',
    "data": '{"data": {...}, "metadata"?, "timestamp"?}',
    "readings": '{"readings": [{"key" or "sensor_type", "value", ...}]}',
    "sensor_type": '{"sensor_type", "value", "unit"?} or a list of those',
    "bytes": '{"time", "value": [4 bytes], "tags"?} or a list of those',
    "sensor_id": '{"sensor_id", "value", "ts"?, "unit"?, "tags"?} or a list of those',
}
# The field names of the formats (API.md): never sensor keys in body 1. ``meta`` is a
# reading's field in bodies 4, 5 and 7.
FIELD_NAMES = frozenset({"sensor_id", "sensor_type", "key", "value", "values", "unit", "ts",
                         "time", "timestamp", "tags", "data", "metadata", "readings", "status",
                         "meta"})
MAX_SENSOR_ID = 2**63 - 1
FORMAT_NAMES = ("auto", *_SHAPES)
FORMATS = "expected one of: " + "; ".join(_SHAPES.values())
_FLOAT32 = {"little": struct.Struct("<f"), "big": struct.Struct(">f")}
BYTE_ORDERS = tuple(_FLOAT32)
# The formats that may also come as a list, by the ``_item_kind`` of their items.
_LISTABLE = {"values": "values", "sensor_type": "single", "bytes": "bytes",
             "sensor_id": "by_id"}
_FORMAT_OF_ITEM = {kind: name for name, kind in _LISTABLE.items()}
# The fields each body may hold (API.md, "Strict input"): any other is refused, naming it, so
# a misspelt ``timestmap`` never silently means "now". By ``_item_kind``, and the two wrappers.
_FIELDS = {
    "values": frozenset({"ts", "timestamp", "values", "metadata", "tags"}),
    "single": frozenset({"key", "sensor_type", "value", "unit", "ts", "timestamp", "time",
                         "tags", "meta"}),
    "bytes": frozenset({"time", "ts", "timestamp", "key", "value", "unit", "tags"}),
    # ``status``: older sensor-data clients send the review state; it is not theirs to set.
    "by_id": frozenset({"sensor_id", "value", "ts", "timestamp", "time", "unit", "tags", "meta",
                        "status"}),
    "readings": frozenset({"readings"}),
    "data": frozenset({"data", "metadata", "timestamp", "ts", "tags"}),
}
# Where a misplaced field belongs, for the message.
_HINTS = {"device_id": " (device_id goes in the query: POST /readings?device_id=...)"}


@dataclass(slots=True)
class Reading:
    """One decoded reading; ``ts`` None means "now" (decided by the caller). A reading of
    body 7 names its sensor by ``sensor_id`` and has no ``key``."""

    key: str | None
    value: float
    ts: datetime | None = None
    unit: str | None = None
    tags: list[str] | None = None
    meta: dict | None = None
    sensor_id: int | None = None


@dataclass(slots=True)
class Rejection:
    index: int
    reason: str
    key: str | None = None

    def as_dict(self) -> dict:
        out: dict[str, Any] = {"index": self.index, "reason": self.reason}
        if self.key is not None:
            out["key"] = self.key
        return out


def parse_json(raw: bytes) -> Any:
    """orjson, falling back to the standard parser for NaN/Infinity, which some devices send
    (those readings are then rejected one by one, not the whole body)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise Invalid("the body is not valid JSON; " + FORMATS, loc=["body"]) from None


def _number(value: Any) -> float:
    if type(value) is float:  # the common case first
        if value - value != 0.0:  # NaN or an infinity (only the json fallback makes them)
            raise Refused("non-finite value")
        return value
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            raise Refused("number out of range") from None
        if not math.isfinite(number):
            raise Refused("non-finite value")
        return number
    if value is None:
        raise Refused("missing value")
    if isinstance(value, str):
        raise Refused("string value")
    raise Refused(f"{type(value).__name__} value")


def _float32(value: Any, byte_order: str) -> float:
    if not isinstance(value, list) or len(value) != 4:
        raise Refused("not four bytes")
    for byte in value:
        if isinstance(byte, bool) or not isinstance(byte, int) or not 0 <= byte <= 255:
            raise Refused("byte out of range")
    number = _FLOAT32[byte_order].unpack(bytes(value))[0]
    if not math.isfinite(number):
        raise Refused("non-finite value")
    return number


@lru_cache(maxsize=8192)
def _valid_key(value: str) -> bool:
    return _KEY.match(value) is not None


def _key(value: Any) -> str:
    # Devices send the same few keys over and over: remember which ones are valid.
    if not isinstance(value, str) or not _valid_key(value):
        raise Refused("invalid key: 1 to 100 letters, digits, spaces or _ . : / -")
    return value


def _time(value: Any, out: "_Collector") -> datetime | None:
    if value is None:
        return None
    try:
        when = parse_timestamp(value)
    except (ValueError, OverflowError, OSError, TypeError):
        raise Refused("invalid timestamp") from None
    return _in_range(when, out)


def _in_range(when: datetime, out: "_Collector") -> datetime:
    if when > out.latest:
        raise Refused("in the future")
    if when < out.limits.min_time:
        raise Refused(out.limits.too_early)
    return when


def _tags(value: Any) -> list[str] | None:
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) > MAX_TAGS
            or not all(isinstance(t, str) and 0 < len(t) <= MAX_TAG_LENGTH for t in value)):
        raise Refused(f"invalid tags: a list of at most {MAX_TAGS} strings")
    for tag in value:
        if "\x00" in tag:
            raise Refused("NUL character in a tag")
    return value or None


def _unit(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 32:
        raise Refused("invalid unit: a string of at most 32 characters")
    if "\x00" in value:
        raise Refused("NUL character in the unit")
    return value


def _meta(value: Any) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Invalid("metadata must be an object", loc=["body", "metadata"])
    return value or None


class _Collector:
    def __init__(self, limits: ReadingLimits, now: datetime, strict: bool = True) -> None:
        self.readings: list[Reading] = []
        self.rejected: list[Rejection] = []
        self.index = 0
        self.limits = limits
        self.latest = now + limits.max_future
        self.strict = strict

    def add(self, build, key: Any = None) -> None:
        try:
            self.readings.append(build())
        except Refused as reject:
            self.reject(reject.reason, key)
            return
        self.index += 1

    def reject(self, reason: str, key: Any = None) -> None:
        self.rejected.append(Rejection(self.index, reason, key if isinstance(key, str) else None))
        self.index += 1


def _key_values(out: _Collector, values: dict, ts: Any, meta: dict | None,
                tags: Any = None, reserved: frozenset[str] = frozenset()) -> None:
    """Formats 1, 2 and 3: one reading per key; keys in ``reserved`` are rejected."""
    try:
        when = _time(ts, out)
        tag_list = _tags(tags)
        if meta is not None:
            meta = checked_meta(meta, "metadata")
    except Refused as reject:
        for key in values:
            out.reject(reject.reason, key)
        return
    readings = out.readings
    clash = not reserved.isdisjoint(values)
    for key, value in values.items():  # the hot loop: no closure per value
        if clash and key in reserved:
            out.reject(f"{key!r} is a field name of the formats, not a sensor key", key)
            continue
        try:
            readings.append(Reading(_key(key), _number(value), when, None, tag_list, meta))
        except Refused as reject:
            out.reject(reject.reason, key)
            continue
        out.index += 1


def _single(item: dict, out: _Collector) -> Reading:
    """Formats 4 and 5: ``{"key" or "sensor_type", "value", "unit"?, "ts"/"timestamp"?, ...}``."""
    key = item.get("key", item.get("sensor_type"))
    ts = item.get("ts", item.get("timestamp", item.get("time")))
    return Reading(_key(key), _number(item.get("value")), _time(ts, out),
                   _unit(item.get("unit")), _tags(item.get("tags")),
                   _meta_or_reject(item.get("meta")))


def _by_id(item: dict, out: _Collector) -> Reading:
    """Format 7: ``{"sensor_id", "value", "ts"/"timestamp"?, "unit"?, "tags"?, "meta"?}``; a
    ``status`` (the review state older clients send) is not the sender's to set."""
    sensor_id = item.get("sensor_id")
    if type(sensor_id) is not int or not 0 < sensor_id <= MAX_SENSOR_ID:
        raise Refused("invalid sensor_id: a positive integer")
    ts = item.get("ts", item.get("timestamp", item.get("time")))
    return Reading(None, _number(item.get("value")), _time(ts, out), _unit(item.get("unit")),
                   _tags(item.get("tags")), _meta_or_reject(item.get("meta")), sensor_id)


def _meta_or_reject(value: Any) -> dict | None:
    if value is not None and not isinstance(value, dict):
        raise Refused("invalid meta: an object")
    return checked_meta(value, "meta") if value else None


def _bytes_reading(item: dict, value_key: str, byte_order: str, out: _Collector) -> Reading:
    """Format 6: ``{"time", "value": [4 bytes], "tags"?}``."""
    ts = item.get("time", item.get("ts", item.get("timestamp")))
    return Reading(_key(item.get("key", value_key)), _float32(item.get("value"), byte_order),
                   _time(ts, out), _unit(item.get("unit")), _tags(item.get("tags")))


def _item_kind(item: Any) -> str | None:
    """Which list-able format a dict is: "values" (2), "single" (4/5), "bytes" (6),
    "by_id" (7)."""
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("values"), dict):
        return "values"
    if "sensor_id" in item and "value" in item:
        return "by_id"
    if "value" in item and isinstance(item["value"], list):
        return "bytes"
    if "value" in item and ("sensor_type" in item or "key" in item):
        return "single"
    return None


def _is_flat_mapping(body: dict) -> bool:
    """Format 1: every value is a scalar (numbers expected; others are rejected one by one)."""
    return bool(body) and all(v is None or isinstance(v, (int, float, str, bool))
                              for v in body.values())


def _decode_item(out: _Collector, item: Any, value_key: str, byte_order: str,
                 kind: str | None = None) -> None:
    """One reading of a list-able format. A caller that passes ``kind`` has decided it and
    checked the fields already (a body that is one object)."""
    if kind is None:
        kind = _item_kind(item)
        if out.strict and kind is not None and not _FIELDS[kind].issuperset(item):
            reason = _unknown_fields(item, kind)
            if kind == "values":  # one rejection a value, as for its other faults
                for key in item["values"]:
                    out.reject(reason, key)
            else:
                out.reject(reason, item.get("key", item.get("sensor_type")))
            return
    if kind == "values":
        _key_values(out, item["values"], item.get("ts", item.get("timestamp")),
                    _meta_or_none(item.get("metadata")), item.get("tags"))
    elif kind == "bytes":
        out.add(lambda: _bytes_reading(item, value_key, byte_order, out), value_key)
    elif kind == "single":
        out.add(lambda: _single(item, out), item.get("key", item.get("sensor_type")))
    elif kind == "by_id":
        out.add(lambda: _by_id(item, out))
    else:
        out.reject("unknown format")


def _meta_or_none(value: Any) -> dict | None:
    return value if isinstance(value, dict) and value else None


def _unknown_fields(item: dict, kind: str) -> str:
    """Why an object of ``kind`` holding fields of no format is refused (its callers have
    checked ``_FIELDS[kind].issuperset(item)`` inline: the common case costs no call)."""
    allowed = _FIELDS[kind]
    unknown = [field for field in item if field not in allowed]
    names = ", ".join(repr(field) for field in unknown[:5]) + (", ..." if len(unknown) > 5
                                                                else "")
    hint = next((_HINTS[field] for field in unknown if field in _HINTS), "")
    return (f"unknown field{'s' if len(unknown) > 1 else ''} {names}{hint}; "
            f"this format's fields: {', '.join(sorted(allowed))}")


def _unknown_body(body: dict, kind: str) -> Invalid:
    """A body that is one object: its unknown fields are a 422 naming them."""
    first = next(field for field in body if field not in _FIELDS[kind])
    return Invalid(_unknown_fields(body, kind), loc=["body", first])


def _body_format(body: dict) -> str | None:
    """Which of ``FORMAT_NAMES`` an object is, decided the way ``decode_body`` dispatches."""
    if "readings" in body:
        return "readings"
    if "data" in body and isinstance(body["data"], dict):
        return "data"
    kind = _item_kind(body)
    if kind is not None:
        return _FORMAT_OF_ITEM[kind]
    return "keys" if _is_flat_mapping(body) else None


def _wrong_format(expect: str) -> Invalid:
    return Invalid(f"expected the {expect!r} format: {_SHAPES[expect]}", loc=["body"])


def _decode_list_of(out: _Collector, body: list, expect: str, value_key: str,
                    byte_order: str) -> None:
    """A list restricted to one format: items of another format are rejected one by one."""
    kind = _LISTABLE.get(expect)
    if kind is None or not any(_item_kind(item) == kind for item in body):
        raise _wrong_format(expect)
    for item in body:
        if _item_kind(item) == kind:
            _decode_item(out, item, value_key, byte_order)
        else:
            out.reject(f"not the {expect!r} format")


def screen(readings: list[Reading], limits: ReadingLimits = DEFAULT_LIMITS,
           now: datetime | None = None) -> tuple[list[Reading], list[Rejection]]:
    """Readings built elsewhere (an import's lines) through the rules ``decode_body`` applies:
    the ones that pass, and the others rejected at their position in ``readings``."""
    out = _Collector(limits, now or utcnow())
    kept = []
    for position, reading in enumerate(readings):
        try:
            _key(reading.key)
            if reading.ts is not None:
                _in_range(reading.ts, out)
            _tags(reading.tags)
            _unit(reading.unit)
            _meta_or_reject(reading.meta)
        except Refused as reject:
            out.rejected.append(Rejection(position, reject.reason, reading.key))
            continue
        kept.append(reading)
    return kept, out.rejected


def decode_body(body: Any, *, value_key: str = "value", byte_order: str = "little",
                expect: str | None = None, limits: ReadingLimits = DEFAULT_LIMITS,
                now: datetime | None = None, strict: bool = True
                ) -> tuple[list[Reading], list[Rejection]]:
    """Normalise any accepted body; raises ``Invalid`` when the body is none of them.

    ``expect``, one of ``FORMAT_NAMES`` (a connector's ``format``), restricts decoding to that
    body: any other body is an ``Invalid`` naming the expected format, and items of a list that
    are of another format are rejected one by one. ``None`` or ``"auto"``: every body.
    ``now``, the server's clock (default: read it), is what "in the future" is measured from.
    ``strict`` (the default): a field no format has is refused, naming it: the whole body when
    it is one object (``Invalid``), the item alone in a list. A connector's upstream, which
    its user cannot change, is read with ``strict=False``: such fields are ignored.
    """
    if expect is not None:
        if expect == "auto":
            expect = None
        elif expect not in _SHAPES:
            raise ValueError(f"unknown format {expect!r}; one of {FORMAT_NAMES}")
    out = _Collector(limits, now or utcnow(), strict)
    if isinstance(body, list):
        if not body:
            raise Invalid("the body is an empty list: no readings", loc=["body"])
        if expect is not None:
            _decode_list_of(out, body, expect, value_key, byte_order)
            return out.readings, out.rejected
        if not any(_item_kind(item) for item in body):
            raise Invalid("no item of the list is a reading; " + FORMATS, loc=["body"])
        for item in body:
            _decode_item(out, item, value_key, byte_order)
    elif not isinstance(body, dict):
        raise Invalid("the body must be a JSON object or a list; " + FORMATS, loc=["body"])
    elif expect is not None and _body_format(body) != expect:
        raise _wrong_format(expect)
    elif "readings" in body:
        if strict and not _FIELDS["readings"].issuperset(body):
            raise _unknown_body(body, "readings")
        items = body["readings"]
        if not isinstance(items, list) or not items:
            raise Invalid("readings must be a non-empty list", loc=["body", "readings"])
        for item in items:
            if not isinstance(item, dict):
                out.reject("unknown format")
                continue
            kind = "by_id" if _item_kind(item) == "by_id" else "single"
            if strict and not _FIELDS[kind].issuperset(item):
                out.reject(_unknown_fields(item, kind), item.get("key", item.get("sensor_type")))
            elif kind == "by_id":
                out.add(lambda i=item: _by_id(i, out))
            else:
                out.add(lambda i=item: _single(i, out), item.get("key", item.get("sensor_type")))
    elif "data" in body and isinstance(body["data"], dict):
        if strict and not _FIELDS["data"].issuperset(body):
            raise _unknown_body(body, "data")
        if not body["data"]:
            raise Invalid("data is empty: no readings", loc=["body", "data"])
        _key_values(out, body["data"], body.get("timestamp", body.get("ts")),
                    _meta(body.get("metadata")), body.get("tags"))
    elif (kind := _item_kind(body)) is not None:
        if strict and not _FIELDS[kind].issuperset(body):
            raise _unknown_body(body, kind)
        _decode_item(out, body, value_key, byte_order, kind)
    elif _is_flat_mapping(body):
        _key_values(out, body, None, None, reserved=FIELD_NAMES)
    else:
        raise Invalid("unknown format; " + FORMATS, loc=["body"])
    return out.readings, out.rejected
