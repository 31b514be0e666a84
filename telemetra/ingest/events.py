"""The events of the ingestion path."""

from collections.abc import Iterable
from dataclasses import dataclass

from telemetra.db.types import to_micros
from telemetra.ingest.batches import Row
from telemetra.kit.events import event
from telemetra.readings.flags import INVALID

# (sensor_id, device_id, organization_id, ts in microseconds since the epoch (UTC), value,
#  valid, tags as a tuple or None)
CommittedRow = tuple[int, int, int, int, float, bool, tuple[str, ...] | None]


@event("readings.committed")
@dataclass(frozen=True, slots=True)
class ReadingsCommitted:
    """A batch of readings was committed: its new rows, duplicates left out, in plain values
    (a transport between processes carries them as JSON). Published by the writer after the
    commit and before it answers the batch's callers."""

    rows: tuple[CommittedRow, ...]


def committed(new_rows: Iterable[Iterable[Row]]) -> ReadingsCommitted:
    """The event of a batch whose new rows, per request, are ``new_rows``."""
    out = []
    last = micros = None
    for rows in new_rows:
        for sensor_id, ts, value, flags, tags, _meta, origin in rows:
            if ts is not last:  # the readings of one body entry share their time: convert once
                last, micros = ts, to_micros(ts)
            out.append((sensor_id, origin.device_id, origin.organization_id, micros, value,
                        not flags & INVALID, tuple(tags) if tags is not None else None))
    return ReadingsCommitted(tuple(out))
