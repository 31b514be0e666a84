"""The PostgreSQL side of the group-commit writer, on the writer's own asyncpg connection.

- A large batch (``COPY_MIN_ROWS`` or more) is copied (COPY, binary) straight into
  ``readings``: measured on one connection, 65% more rows/s than through a temporary table
  and ``INSERT ... ON CONFLICT``. Only when that copy meets a duplicate key is it undone (a
  savepoint) and the batch goes through the temporary table, whose insert skips duplicates
  and says which rows were new.
- A small batch (single readings) is one statement in one round trip, committed on its own:
  it inserts, moves the sensors' latest values and gives the new keys back.

``readings`` has no foreign key to ``sensors`` on PostgreSQL: checked row by row, the key
halved the rate at which a batch is stored. Instead each batch locks its few sensors (``FOR
KEY SHARE``, which a concurrent DELETE waits for), and a batch naming a sensor that is gone
stores nothing (``SensorGone``). Deleting sensors deletes their readings through a trigger
(migration 0004), whichever way the sensors go (a sensor, its device, its organization).
"""

from collections.abc import Sequence

from asyncpg import Connection, UniqueViolationError

from telemetra.ingest.batches import Row, SensorGone, attribute, note_latest, to_json
from telemetra.readings.flags import INVALID

COPY_MIN_ROWS = 256
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
_LATEST = """
UPDATE sensors AS s SET last_value = v.value, last_ts = v.ts
FROM unnest($1::int[], $2::timestamptz[], $3::float8[]) AS v(id, ts, value)
WHERE s.id = v.id AND (s.last_ts IS NULL OR s.last_ts < v.ts)
"""
# $7: the batch's sensor ids, each once. When one is gone nothing is inserted and the
# statement answers a row of NULLs.
_WRITE_SMALL = f"""
WITH live AS (
    SELECT count(*) AS n
    FROM (SELECT 1 FROM sensors WHERE id = ANY($7::int[]) FOR KEY SHARE) AS locked
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


class PostgresBatches:
    def __init__(self) -> None:
        self._incoming_on: Connection | None = None  # the connection with the temporary table

    async def write(self, raw: Connection, requests: list[Sequence[Row]]) -> list[int]:
        """Store the requests' rows in one transaction; how many rows of each were new."""
        rows = [row if row[4] is None and row[5] is None
                else (*row[:4], to_json(row[4]), to_json(row[5]))
                for request in requests for row in request]
        sensor_ids = list({row[0] for row in rows})
        if len(rows) < COPY_MIN_ROWS:
            returned = await raw.fetch(_WRITE_SMALL, *zip(*rows), sensor_ids)
            if returned and returned[-1][0] is None:
                raise SensorGone
            return attribute(requests, {(r[0], r[1]) for r in returned})[0]
        if self._incoming_on is not raw:  # once per connection, outside a batch's transaction
            await raw.execute(_CREATE_INCOMING)
            self._incoming_on = raw
        async with raw.transaction():
            if await raw.fetchval(_LOCK_SENSORS, sensor_ids) < len(sensor_ids):
                raise SensorGone
            try:
                async with raw.transaction():  # a savepoint
                    await raw.copy_records_to_table("readings", records=rows,
                                                    columns=_COLUMNS)
            except UniqueViolationError:  # some were stored before: skip them, say which
                await raw.copy_records_to_table(_INCOMING, records=rows, columns=_COLUMNS)
                returned = await raw.fetch(_INSERT_INCOMING)
                counts, latest = attribute(requests, {(r[0], r[1]) for r in returned})
            else:
                counts, latest = [len(request) for request in requests], {}
                for request in requests:
                    note_latest(latest, request)
            if latest:
                ids, values = zip(*latest.items())
                await raw.execute(_LATEST, list(ids), [v[0] for v in values],
                                  [v[1] for v in values])
        return counts
