"""Opaque reading ids and keyset cursors.

A reading's id encodes its primary key ``(sensor_id, ts)``; a cursor encodes where the last
page ended. Both are URL-safe base64, and anything that does not decode is a clean error.
"""

import base64
import binascii
import struct
from datetime import datetime

from telemetra.db.types import from_micros, to_micros
from telemetra.kit.errors import Invalid, NotFound

_ID = struct.Struct(">iq")
_SENSOR = struct.Struct(">i")
_BAD_CURSOR = "cursor: not a cursor this server gave out"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def reading_id(sensor_id: int, ts: datetime) -> str:
    return _b64(_ID.pack(sensor_id, to_micros(ts)))


def parse_reading_id(text: str) -> tuple[int, datetime]:
    try:
        raw = _unb64(text)
        if len(raw) != _ID.size:
            raise ValueError
        sensor_id, micros = _ID.unpack(raw)
        return sensor_id, from_micros(micros)
    except (ValueError, binascii.Error, OverflowError):
        raise NotFound(f"reading {text} not found") from None


def make_cursor(ts: datetime, sensor_id: int) -> str:
    return "c" + _b64(_ID.pack(sensor_id, to_micros(ts)))


def parse_cursor(text: str) -> tuple[datetime, int]:
    try:
        if not text.startswith("c"):
            raise ValueError
        raw = _unb64(text[1:])
        if len(raw) != _ID.size:
            raise ValueError
        sensor_id, micros = _ID.unpack(raw)
        return from_micros(micros), sensor_id
    except (ValueError, binascii.Error, OverflowError):
        raise Invalid(_BAD_CURSOR, loc=["query", "cursor"]) from None


def make_sensor_cursor(sensor_id: int) -> str:
    """Where a page of latest readings (one per sensor, by sensor id) ended."""
    return "s" + _b64(_SENSOR.pack(sensor_id))


def parse_sensor_cursor(text: str) -> int:
    try:
        raw = _unb64(text[1:]) if text.startswith("s") else b""
        if len(raw) != _SENSOR.size:
            raise ValueError
        return _SENSOR.unpack(raw)[0]
    except (ValueError, binascii.Error):
        raise Invalid(_BAD_CURSOR, loc=["query", "cursor"]) from None
