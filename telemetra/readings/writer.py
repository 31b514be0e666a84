"""Group commit: one writer per process gathers concurrent ingest requests into one batch.

Callers hand rows to ``Writer.write`` and wait; the writer takes everything queued, writes it
in one transaction (on PostgreSQL, an INSERT ... ON CONFLICT DO NOTHING from a COPY into a
temporary table for large batches, from array parameters for small ones; executemany
INSERT OR IGNORE on SQLite), commits, and only then resolves each caller with how many of its
rows were new. So a 202 always means committed, and durability costs one commit per batch, not
per request. The queue is bounded in rows: past the bound ``write`` raises ``Unavailable``
(503 with Retry-After) instead of letting memory grow.
"""

import asyncio
import fcntl
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import bindparam, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from telemetra.db.tables import sensors
from telemetra.db.types import to_micros
from telemetra.kit.errors import Invalid, Unavailable
from telemetra.readings.flags import is_valid
from telemetra.readings.partitions import Partitions, month_of

log = logging.getLogger("telemetra.writer")

# (sensor_id, ts, value, flags, tags, meta)
Row = tuple[int, datetime, float, int, list | None, dict | None]

# A batch is first copied (COPY, binary) into a temporary table of the writer's connection,
# emptied at each commit, then inserted from there: COPY encodes rows far more cheaply than
# array parameters, and the temporary table writes no WAL.
_PG_INCOMING = "readings_incoming"
_PG_COLUMNS = ["sensor_id", "ts", "value", "flags", "tags", "meta"]
_PG_CREATE_INCOMING = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {_PG_INCOMING} (
    sensor_id integer NOT NULL, ts timestamptz NOT NULL, value double precision NOT NULL,
    flags smallint NOT NULL, tags jsonb, meta jsonb
) ON COMMIT DELETE ROWS
"""
_PG_FROM_INCOMING = f"SELECT sensor_id, ts, value, flags, tags, meta FROM {_PG_INCOMING}"
# Small batches (single readings) skip the copy: one round trip with array parameters.
_PG_FROM_ARRAYS = """SELECT * FROM unnest($1::int[], $2::timestamptz[], $3::float8[], $4::int2[],
                     $5::text[]::jsonb[], $6::text[]::jsonb[])"""
COPY_MIN_ROWS = 256


def _pg_insert(source: str) -> str:
    return (f"INSERT INTO readings (sensor_id, ts, value, flags, tags, meta) {source} "
            "ON CONFLICT (sensor_id, ts) DO NOTHING")


# Fast path: only how many rows were new. When that is all of them (no duplicate, the usual
# case) every request's count is its number of rows; otherwise the insert is redone, inside
# the same transaction, returning the keys, to tell each request its own duplicates.
_PG_INSERT_COUNT = {source: f"WITH ins AS ({_pg_insert(source)} RETURNING 1) "
                            "SELECT count(*) FROM ins"
                    for source in (_PG_FROM_INCOMING, _PG_FROM_ARRAYS)}
_PG_INSERT_KEYS = {source: _pg_insert(source) + " RETURNING sensor_id, ts"
                   for source in (_PG_FROM_INCOMING, _PG_FROM_ARRAYS)}
_PG_LATEST = """
UPDATE sensors AS s SET last_value = v.value, last_ts = v.ts
FROM unnest($1::int[], $2::timestamptz[], $3::float8[]) AS v(id, ts, value)
WHERE s.id = v.id AND (s.last_ts IS NULL OR s.last_ts < v.ts)
"""
_SQLITE_INSERT = ("INSERT OR IGNORE INTO readings (sensor_id, ts, value, flags, tags, meta) "
                  "VALUES (?, ?, ?, ?, ?, ?)")
_sqlite_latest = (update(sensors)
                  .where(sensors.c.id == bindparam("sid"),
                         (sensors.c.last_ts.is_(None)) | (sensors.c.last_ts < bindparam("ts")))
                  .values(last_value=bindparam("value"), last_ts=bindparam("ts")))


def _json(value) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


@dataclass(slots=True)
class _Pending:
    rows: Sequence[Row]
    future: asyncio.Future


class Writer:
    def __init__(self, engine: AsyncEngine, partitions: Partitions, *,
                 max_pending_rows: int = 200_000, max_batch_rows: int = 50_000,
                 timeout_seconds: float = 30.0) -> None:
        self.engine = engine
        self.partitions = partitions
        self.max_pending_rows = max_pending_rows
        self.max_batch_rows = max_batch_rows
        self.timeout_seconds = timeout_seconds
        self.pending_rows = 0
        self.batches = 0
        self.rows_written = 0
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._closing = False
        self._conn: AsyncConnection | None = None  # the writer's own, kept between batches
        self._incoming_on = None  # the raw connection that has the temporary table
        self._sqlite_turn = WriterTurn(engine.url.database
                                       if engine.dialect.name == "sqlite" else None)

    @property
    def queue_depth(self) -> int:
        return self.pending_rows

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="telemetra-writer")

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        self._closing = True
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self._drop_connection()

    async def _connection(self) -> AsyncConnection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            conn = await self.engine.connect()
            if self.engine.dialect.name == "sqlite":
                conn = await conn.execution_options(sqlite_write=True)
            self._conn = conn
        return self._conn

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.close()
            except Exception:  # a broken connection may fail to close; it is dropped anyway
                log.debug("closing the writer's connection failed", exc_info=True)

    async def write(self, rows: Sequence[Row]) -> int:
        """Store ``rows`` durably; returns how many were new (the rest were duplicates)."""
        if not rows:
            return 0
        if self._closing:
            raise Unavailable("shutting down; retry", headers={"Retry-After": "1"})
        if self.pending_rows + len(rows) > self.max_pending_rows and self.pending_rows:
            raise Unavailable("ingestion is saturated; retry shortly",
                              headers={"Retry-After": "1"})
        future = asyncio.get_running_loop().create_future()
        self.pending_rows += len(rows)
        self._queue.put_nowait(_Pending(rows, future))
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout_seconds)
        except TimeoutError:
            raise Unavailable("the database did not confirm the write in time; retry",
                              headers={"Retry-After": "5"}) from None

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch, size = [first], len(first.rows)
            while size < self.max_batch_rows and not self._queue.empty():
                item = self._queue.get_nowait()
                batch.append(item)
                size += len(item.rows)
            try:
                await self._write_batch(batch)
            finally:
                self.pending_rows -= size
                for _ in batch:
                    self._queue.task_done()

    async def _write_batch(self, batch: list[_Pending]) -> None:
        try:
            counts = await self._write(batch)
        except IntegrityError:
            # A sensor vanished (deleted) under one request: write each alone, so only that
            # request fails.
            if len(batch) > 1:
                for item in batch:
                    await self._write_batch([item])
                return
            _resolve_error(batch, Invalid("a sensor of this request was deleted meanwhile"))
            return
        except Exception as exc:  # the database is unreachable or failing: 503, never a hang
            log.warning("write of %d requests failed: %s", len(batch), type(exc).__name__)
            await self._drop_connection()  # the next batch starts on a fresh connection
            _resolve_error(batch, Unavailable("the database is unavailable; retry shortly",
                                              headers={"Retry-After": "5"}))
            return
        self.batches += 1
        for item, count in zip(batch, counts):
            self.rows_written += count
            if not item.future.done():
                item.future.set_result(count)

    async def _write(self, batch: list[_Pending]) -> list[int]:
        await self.partitions.ensure({month_of(row[1]) for item in batch for row in item.rows})
        if self.engine.dialect.name == "postgresql":
            return await self._write_postgresql(batch)
        return await self._write_sqlite(batch)

    async def _write_postgresql(self, batch: list[_Pending]) -> list[int]:
        rows = [row if row[4] is None and row[5] is None
                else (*row[:4], _json(row[4]), _json(row[5]))
                for item in batch for row in item.rows]
        conn = await self._connection()
        raw = (await conn.get_raw_connection()).driver_connection
        # asyncpg's own transaction: statements on the raw connection are outside SQLAlchemy's.
        async with raw.transaction():
            if len(rows) >= COPY_MIN_ROWS:
                if self._incoming_on is not raw:  # once per connection
                    await raw.execute(_PG_CREATE_INCOMING)
                    self._incoming_on = raw
                await raw.copy_records_to_table(_PG_INCOMING, records=rows,
                                                columns=_PG_COLUMNS)
                source, arguments = _PG_FROM_INCOMING, ()
            else:
                source, arguments = _PG_FROM_ARRAYS, tuple(zip(*rows))
            fast = raw.transaction()  # a savepoint
            await fast.start()
            if await raw.fetchval(_PG_INSERT_COUNT[source], *arguments) == len(rows):
                await fast.commit()
                counts = [len(item.rows) for item in batch]
                latest: dict = {}
                for item in batch:
                    _note_latest(latest, item.rows)
            else:
                await fast.rollback()
                returned = await raw.fetch(_PG_INSERT_KEYS[source], *arguments)
                counts, latest = _attribute(batch, {(r[0], r[1]) for r in returned})
            if latest:
                ids, values = zip(*latest.items())
                await raw.execute(_PG_LATEST, list(ids), [v[0] for v in values],
                                  [v[1] for v in values])
        return counts

    async def _write_sqlite(self, batch: list[_Pending]) -> list[int]:
        async with self._sqlite_turn:
            return await self._write_sqlite_batch(batch)

    async def _write_sqlite_batch(self, batch: list[_Pending]) -> list[int]:
        counts: list[int] = []
        latest: dict[int, tuple[datetime, float]] = {}
        conn = await self._connection()
        async with conn.begin():
            for item in batch:
                result = await conn.exec_driver_sql(_SQLITE_INSERT, [
                    (r[0], to_micros(r[1]), r[2], r[3], _json(r[4]), _json(r[5]))
                    for r in item.rows])
                counts.append(result.rowcount)
                _note_latest(latest, item.rows)
            if latest:
                await conn.execute(_sqlite_latest, [
                    {"sid": sid, "ts": ts, "value": value}
                    for sid, (ts, value) in latest.items()])
        return counts


class WriterTurn:
    """The writers of several processes on one SQLite file take turns through a file lock.

    Without it they meet at SQLite's write lock, whose busy handler sleeps ever longer (up to
    100 ms a try) while it waits: with two workers, single-reading requests waited up to a
    second. A blocked ``flock`` instead wakes the moment the other writer is done."""

    def __init__(self, database: str | None) -> None:
        self.path = f"{database}.writer-lock" if database and database != ":memory:" else None
        self._handle = None

    async def __aenter__(self) -> None:
        if self.path is not None:
            if self._handle is None:
                self._handle = open(self.path, "a+")  # noqa: SIM115 (held while the writer runs)
            await asyncio.to_thread(fcntl.flock, self._handle, fcntl.LOCK_EX)

    async def __aexit__(self, *exc_info) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)


def _note_latest(latest: dict, rows) -> None:
    for sensor_id, ts, value, flags, _tags, _meta in rows:
        if is_valid(flags):
            current = latest.get(sensor_id)
            if current is None or current[0] < ts:
                latest[sensor_id] = (ts, value)


def _attribute(batch: list[_Pending], inserted: set) -> tuple[list[int], dict]:
    """Per request, how many rows were new: the first request holding a new key claims it."""
    counts, latest = [], {}
    for item in batch:
        count = 0
        for row in item.rows:
            key = (row[0], row[1])
            if key in inserted:
                inserted.discard(key)
                count += 1
                if is_valid(row[3]):
                    current = latest.get(row[0])
                    if current is None or current[0] < row[1]:
                        latest[row[0]] = (row[1], row[2])
        counts.append(count)
    return counts, latest


def _resolve_error(batch: list[_Pending], error: Exception) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(error)
