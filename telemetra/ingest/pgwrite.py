"""The PostgreSQL side of the group-commit writer, on the writer's own asyncpg connection.

- A large batch (``COPY_MIN_ROWS`` or more) is copied (COPY, binary) straight into
  ``readings``: measured on one connection, 65% more rows/s than through a temporary table
  and ``INSERT ... ON CONFLICT``. Only when that copy meets a duplicate key is it undone (a
  savepoint) and the batch goes through the temporary table, whose insert skips duplicates
  and says which rows were new.
- A small batch (single readings) is one statement in one round trip, committed on its own:
  it inserts, moves the sensors' latest values and gives the new keys back.

A row the server timed (a reading sent without a time) is never a re-send: when its key is
taken (another process gave the same microsecond to the same sensor, or one request holds two
such readings) it is written again a microsecond later, until it finds a free one. Only the
rows that were not stored are retried, so a batch without duplicates pays nothing for it.

``readings`` has no foreign key to ``sensors`` on PostgreSQL: checked row by row, the key
halved the rate at which a batch is stored. Instead each batch locks its few sensors, and a
batch naming a sensor that is gone stores nothing (``SensorGone``). Deleting sensors deletes
their readings through a trigger (migration 0004), whichever way the sensors go (a sensor,
its device, its organization).

The latest values' update locks its sensors in sensor id order (``FOR NO KEY UPDATE``, the
lock the update takes anyway), so two processes' batches never wait for each other's sensors
in a cycle (a soak with two workers logged 9 deadlocks when the update took them in whatever
order its join gave). A small batch takes those locks first, in one statement; a large one
takes only ``FOR KEY SHARE`` first (what a DELETE waits for) and the ordered locks in its
update's statement, so two processes' COPYs of the same sensors still run side by side
(locking first halved the batch rate with two workers). A deadlock or serialization failure
that happens all the same (two large batches holding the same new keys) is retried a few
times before it becomes a 503.
"""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from asyncpg import Connection, DeadlockDetectedError, SerializationError, UniqueViolationError

from telemetra.ingest.batches import (
    Latest,
    Row,
    SensorGone,
    attribute,
    latest_columns,
    note_latest,
    retime,
    to_json,
)
from telemetra.readings.flags import INVALID

log = logging.getLogger("telemetra.writer")

COPY_MIN_ROWS = 256
CONFLICT_ATTEMPTS = 5  # tries of one unit of work that deadlocks or fails to serialize
_COLUMNS = ["sensor_id", "ts", "value", "flags", "tags", "meta"]
_INCOMING = "readings_incoming"  # emptied at each commit; writes no WAL
_CREATE_INCOMING = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {_INCOMING} (
    sensor_id integer NOT NULL, ts timestamptz NOT NULL, value double precision NOT NULL,
    flags smallint NOT NULL, tags jsonb, meta jsonb
) ON COMMIT DELETE ROWS
"""
_LOCK_SENSORS = """
SELECT count(*) FROM (SELECT 1 FROM sensors WHERE id = ANY($1::int[]) FOR KEY SHARE) AS live
"""
_INSERT_INCOMING = f"""
INSERT INTO readings (sensor_id, ts, value, flags, tags, meta)
SELECT sensor_id, ts, value, flags, tags, meta FROM {_INCOMING}
ON CONFLICT (sensor_id, ts) DO NOTHING RETURNING sensor_id, ts
"""
_INSERT_ROWS = """
INSERT INTO readings (sensor_id, ts, value, flags, tags, meta)
SELECT * FROM unnest($1::int[], $2::timestamptz[], $3::float8[], $4::int2[],
                     $5::text[]::jsonb[], $6::text[]::jsonb[])
ON CONFLICT (sensor_id, ts) DO NOTHING RETURNING sensor_id, ts
"""
# $1: sensor ids sorted, each once (``latest_columns``). ``locked`` is a one-time condition,
# evaluated before the update visits a row: it takes the locks in id order, in the same round
# trip (a statement of its own, inside the locks' hold, cut the batch rate by a third).
_LATEST = """
WITH locked AS (
    SELECT count(*) AS n FROM (SELECT 1 FROM sensors WHERE id = ANY($1::int[])
                               ORDER BY id FOR NO KEY UPDATE) AS l
)
UPDATE sensors AS s SET last_value = v.value, last_ts = v.ts
FROM unnest($1::int[], $2::timestamptz[], $3::float8[]) AS v(id, ts, value)
WHERE (SELECT n FROM locked) >= 0 AND s.id = v.id AND (s.last_ts IS NULL OR s.last_ts < v.ts)
"""
# $7: the batch's sensor ids, each once, sorted. ``live`` is computed before the insert (the
# insert's condition needs it), so the sensors are locked first, in id order. When one is
# gone nothing is inserted and the statement answers a row of NULLs.
_WRITE_SMALL = f"""
WITH live AS (
    SELECT count(*) AS n
    FROM (SELECT 1 FROM sensors WHERE id = ANY($7::int[])
          ORDER BY id FOR NO KEY UPDATE) AS locked
), ins AS (
    INSERT INTO readings (sensor_id, ts, value, flags, tags, meta)
    SELECT * FROM unnest($1::int[], $2::timestamptz[], $3::float8[], $4::int2[],
                         $5::text[]::jsonb[], $6::text[]::jsonb[])
    WHERE (SELECT n FROM live) = cardinality($7::int[])
    ON CONFLICT (sensor_id, ts) DO NOTHING
    RETURNING sensor_id, ts, value, flags
), latest AS (
    UPDATE sensors AS s SET last_value = v.value, last_ts = v.ts
    FROM (SELECT DISTINCT ON (sensor_id) sensor_id, ts, value FROM ins
          WHERE flags & {INVALID} = 0 ORDER BY sensor_id, ts DESC) AS v
    WHERE s.id = v.sensor_id AND (s.last_ts IS NULL OR s.last_ts < v.ts)
)
SELECT sensor_id, ts FROM ins
UNION ALL SELECT NULL, NULL FROM live WHERE n < cardinality($7::int[])
"""

T = TypeVar("T")


def _encoded(rows: Sequence[Row]) -> list[tuple]:
    """The rows with tags and meta as JSON text. A row without either is handed on as it is:
    asyncpg's COPY reads only as many items of a record as there are columns, and a new
    tuple per row costs (measured: slicing every row to its six stored columns doubled the
    writer's CPU per row, mostly in the collections the new tuples set off)."""
    return [row if row[4] is None and row[5] is None
            else (*row[:4], to_json(row[4]), to_json(row[5])) for row in rows]


def _columns(records: list[tuple]) -> list:
    return list(zip(*records))[:6] if records else [[]] * 6


async def retry_conflicts(attempt: Callable[[], Awaitable[T]]) -> T:
    """``attempt()`` (one statement or one transaction, undone whole when it fails), again
    when PostgreSQL chose it as a deadlock's victim or could not serialize it."""
    for tries in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            return await attempt()
        except (DeadlockDetectedError, SerializationError) as exc:
            if tries == CONFLICT_ATTEMPTS:
                raise
            log.info("a batch met a %s; trying again (%d)", type(exc).__name__, tries)
            await asyncio.sleep(random.uniform(0, 0.01 * tries))  # the other side goes first
    raise AssertionError("unreachable")


class PostgresBatches:
    def __init__(self) -> None:
        self._incoming_on: Connection | None = None  # the connection with the temporary table

    async def write(self, raw: Connection, requests: list[Sequence[Row]]) -> list[list[Row]]:
        """Store the requests' rows in one transaction; the rows of each that were new (the
        server-timed ones at the microsecond they were stored at)."""
        records = _encoded([row for request in requests for row in request])
        sensor_ids = sorted({record[0] for record in records})
        if len(records) < COPY_MIN_ROWS:
            return await self._write_small(raw, requests, records, sensor_ids)
        if self._incoming_on is not raw:  # once per connection, outside a batch's transaction
            await raw.execute(_CREATE_INCOMING)
            self._incoming_on = raw
        return await retry_conflicts(lambda: self._write_large(raw, requests, records,
                                                               sensor_ids))

    async def _write_small(self, raw: Connection, requests: list[Sequence[Row]],
                           records: list[tuple], sensor_ids: list[int]) -> list[list[Row]]:
        returned = await retry_conflicts(
            lambda: raw.fetch(_WRITE_SMALL, *_columns(records), sensor_ids))
        if returned and returned[-1][0] is None:
            raise SensorGone
        new_rows = requests
        if len(returned) < len(records):
            new_rows, retry = attribute(requests, {(r[0], r[1]) for r in returned})
            # Each retry is a statement of its own: what came before is committed already,
            # and the callers are answered only once every server-timed row is stored.
            while retry:
                again = _encoded([row for _, _, row in retry])
                returned = await retry_conflicts(lambda: raw.fetch(
                    _WRITE_SMALL, *_columns(again), sorted({r[0] for r in again})))
                if returned and returned[-1][0] is None:
                    raise SensorGone
                retry = retime(new_rows, retry, {(r[0], r[1]) for r in returned})
        return new_rows

    async def _write_large(self, raw: Connection, requests: list[Sequence[Row]],
                           records: list[tuple], sensor_ids: list[int]) -> list[list[Row]]:
        async with raw.transaction():
            if await raw.fetchval(_LOCK_SENSORS, sensor_ids) < len(sensor_ids):
                raise SensorGone
            latest: Latest = {}
            try:
                async with raw.transaction():  # a savepoint
                    await raw.copy_records_to_table("readings", records=records,
                                                    columns=_COLUMNS)
            except UniqueViolationError:  # some were stored before: skip them, say which
                await raw.copy_records_to_table(_INCOMING, records=records, columns=_COLUMNS)
                returned = await raw.fetch(_INSERT_INCOMING)
                new_rows, retry = attribute(requests, {(r[0], r[1]) for r in returned})
                while retry:  # in this transaction, whose sensors are locked already
                    again = _encoded([row for _, _, row in retry])
                    returned = await raw.fetch(_INSERT_ROWS, *_columns(again))
                    retry = retime(new_rows, retry, {(r[0], r[1]) for r in returned})
            else:
                new_rows = requests
            for rows in new_rows:
                note_latest(latest, rows)
            if latest:
                await raw.execute(_LATEST, *latest_columns(latest))
        return new_rows
