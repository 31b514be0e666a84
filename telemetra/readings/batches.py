"""What the writer's two backends share: the row shape, which rows of a batch were new, and
the sensors' latest values."""

from collections.abc import Sequence
from datetime import datetime

import orjson

from telemetra.readings.flags import is_valid

# (sensor_id, ts, value, flags, tags, meta)
Row = tuple[int, datetime, float, int, list | None, dict | None]
Latest = dict[int, tuple[datetime, float]]  # sensor id -> (ts, value)


class SensorGone(Exception):
    """A sensor of the batch was deleted while its readings waited: the writer then writes
    each request alone, so that only the requests naming it fail."""


def to_json(value) -> str | None:
    """Tags and meta as JSON text, for both databases' bulk paths."""
    return None if value is None else orjson.dumps(value).decode()


def note_latest(latest: Latest, rows: Sequence[Row]) -> None:
    """Fold the valid rows into the newest value per sensor."""
    for sensor_id, ts, value, flags, _tags, _meta in rows:
        if is_valid(flags):
            current = latest.get(sensor_id)
            if current is None or current[0] < ts:
                latest[sensor_id] = (ts, value)


def attribute(requests: Sequence[Sequence[Row]], inserted: set) -> tuple[list[int], Latest]:
    """Per request, how many rows were new (the first row holding a new key claims it),
    and the latest values among the new rows."""
    counts, latest = [], {}
    for rows in requests:
        new = []
        for row in rows:  # a key twice in one request (one MQTT batch) is new only once
            key = (row[0], row[1])
            if key in inserted:
                inserted.discard(key)
                new.append(row)
        note_latest(latest, new)
        counts.append(len(new))
    return counts, latest
