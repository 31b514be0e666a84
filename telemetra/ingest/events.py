"""The events of the ingestion path."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import attrgetter, is_

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
    """The event of a batch whose new rows, per request, are ``new_rows``.

    Built per request, in C wherever it can be: a request's rows share their ``Origin`` (one
    object, or two when some were timed by the server), and the readings of one body entry
    share their time, so the per-row work is ``zip`` and ``map`` over the rows, and the Python
    work is per request and per distinct time."""
    requests = [rows for rows in new_rows if rows]
    if not requests:
        return ReadingsCommitted((), (), (), (), (), (), ())
    if len(requests) > 1 and sum(map(len, requests)) < 32 * len(requests):
        requests = [[row for rows in requests for row in rows]]  # many small: as one
    parts = [tuple(zip(*rows)) for rows in requests]  # columns per request, in C
    device_ids, organization_ids = [], []
    for part in parts:
        origins = part[6]
        first = origins[0]
        if all(map(is_, origins, repeat(first))):  # one origin: stops at the first other
            n = len(origins)
            device_ids.append((first.device_id,) * n)
            organization_ids.append((first.organization_id,) * n)
        else:
            device_ids.append(tuple(map(_device_id, origins)))
            organization_ids.append(tuple(map(_organization_id, origins)))
    sensor_ids, times, values, flags, tags = (_joined([part[i] for part in parts])
                                              for i in range(5))
    n = len(sensor_ids)
    micros = {ts: to_micros(ts) for ts in set(times)}  # each distinct time converted once
    return ReadingsCommitted(
        sensor_ids, _joined(device_ids), _joined(organization_ids),
        tuple(map(micros.__getitem__, times)), values,
        (True,) * n if not any(flags) else tuple([not f & INVALID for f in flags]),
        tags if tags.count(None) == n else tuple([None if t is None else tuple(t)
                                                   for t in tags]))


def _joined(columns: list[tuple]) -> tuple:
    return columns[0] if len(columns) == 1 else tuple(chain.from_iterable(columns))
