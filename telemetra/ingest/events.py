"""The events of the ingestion path."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter

from telemetra.db.types import to_micros
from telemetra.ingest.batches import Row
from telemetra.kit.events import event
from telemetra.readings.flags import INVALID

# (sensor_id, device_id, organization_id, ts in microseconds since the epoch (UTC), value,
#  valid, tags as a tuple or None)
CommittedRow = tuple[int, int, int, int, float, bool, tuple[str, ...] | None]

_device_id = attrgetter("device_id")
_organization_id = attrgetter("organization_id")


@event("readings.committed")
@dataclass(frozen=True, slots=True)
class ReadingsCommitted:
    """A batch of readings was committed: its new rows, duplicates left out, in plain values
    (a transport between processes carries them as JSON). Published by the writer after the
    commit and before it answers the batch's callers.

    Held as columns, one tuple each, and read row by row through ``rows``: a tuple per row
    set the garbage collector off often enough, at 50,000 rows a batch, to cost the writer
    more than the rest of its work on them."""

    sensor_ids: tuple[int, ...]
    device_ids: tuple[int, ...]
    organization_ids: tuple[int, ...]
    ts: tuple[int, ...]  # microseconds since the epoch, UTC
    values: tuple[float, ...]
    valid: tuple[bool, ...]
    tags: tuple[tuple[str, ...] | None, ...]

    @property
    def rows(self) -> tuple[CommittedRow, ...]:
        """The rows: (sensor_id, device_id, organization_id, ts, value, valid, tags)."""
        return tuple(zip(self.sensor_ids, self.device_ids, self.organization_ids, self.ts,
                         self.values, self.valid, self.tags))

    def __len__(self) -> int:
        return len(self.sensor_ids)


def committed(new_rows: Iterable[Sequence[Row]]) -> ReadingsCommitted:
    """The event of a batch whose new rows, per request, are ``new_rows``."""
    rows = [row for request in new_rows for row in request]
    if not rows:
        return ReadingsCommitted((), (), (), (), (), (), ())
    sensor_ids, times, values, flags, tags, _meta, origins = zip(*rows)  # columns, in C
    n = len(rows)
    # Most batches hold only valid, untagged rows: those columns are then made in C.
    return ReadingsCommitted(
        sensor_ids, tuple(map(_device_id, origins)), tuple(map(_organization_id, origins)),
        _micros(times), values,
        (True,) * n if not any(flags) else tuple([not f & INVALID for f in flags]),
        tags if tags.count(None) == n else tuple([None if t is None else tuple(t)
                                                   for t in tags]))


def _micros(times: tuple) -> tuple[int, ...]:
    out, last, micros = [], None, 0
    for ts in times:
        if ts is not last:  # the readings of one body entry share their time: convert once
            last, micros = ts, to_micros(ts)
        out.append(micros)
    return tuple(out)
