"""Group commit: one writer per process gathers concurrent ingest requests into one batch.

Callers hand rows to ``Writer.write`` and wait; the writer takes everything queued, writes it
in one transaction (``telemetra.ingest.pgwrite``, ``telemetra.ingest.sqlitewrite``),
commits, publishes the batch's new rows (``ReadingsCommitted``, on the ``EventBus`` it was
given), and only then resolves each caller with how many of its rows were new. So a 202
always means committed, a reaction to readings never sees uncommitted ones, and durability
costs one commit per batch, not per request. The queue is bounded in rows: past the bound
``write`` raises ``Unavailable`` (503 with Retry-After) instead of letting memory grow.

Each row carries its ``Origin`` (device, organization, and whether the server gave it its
time), so one ``write`` may hold the rows of several devices (an MQTT batch does).
"""

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from telemetra.ingest.batches import Row, SensorGone, is_unavailable, refusal
from telemetra.ingest.events import ReadingsCommitted, committed
from telemetra.ingest.partitions import Partitions, month_after, month_of
from telemetra.ingest.pgwrite import PostgresBatches
from telemetra.ingest.sqlitewrite import SqliteBatches
from telemetra.kit.errors import Invalid, Unavailable
from telemetra.kit.events import EventBus
from telemetra.system.metrics import WRITER_BATCH_ROWS

log = logging.getLogger("telemetra.writer")


@dataclass(slots=True)
class _Pending:
    rows: Sequence[Row]
    future: asyncio.Future


class Writer:
    def __init__(self, engine: AsyncEngine, partitions: Partitions, *,
                 max_pending_rows: int = 200_000, max_batch_rows: int = 50_000,
                 timeout_seconds: float = 30.0, events: EventBus | None = None,
                 on_committed: Callable[[list[list[Row]]], None] | None = None) -> None:
        self.engine = engine
        self.events = events
        # Told each committed batch's new rows, per request, before its callers are answered
        # (the usage counters: telemetra.orgs.usage); it must be quick and never wait.
        self.on_committed = on_committed
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
        self._sqlite = (SqliteBatches(engine.url.database)
                        if engine.dialect.name == "sqlite" else None)
        self._postgresql = PostgresBatches()

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
        if self._sqlite is not None:
            await self._sqlite.close()

    async def _connection(self) -> AsyncConnection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = await self.engine.connect()
        return self._conn

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.close()
            except Exception:  # a broken connection may fail to close; it is dropped anyway
                log.debug("closing the writer's connection failed", exc_info=True)

    async def write(self, rows: Sequence[Row]) -> int:
        """Store ``rows`` durably; returns how many were new (the rest were duplicates).
        Rows the server timed (``Origin.server_timed``) are never duplicates: one whose
        microsecond is taken is stored at the next free one. The new rows themselves are
        published as ``ReadingsCommitted`` before this returns."""
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
            async with asyncio.timeout(self.timeout_seconds):
                return await asyncio.shield(future)
        except TimeoutError:
            raise Unavailable("the database did not confirm the write in time; retry",
                              headers={"Retry-After": "5"}) from None

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if self._sqlite is not None:  # gather only once it is this process's turn
                await self._sqlite.take_turn()
            batch, size = [first], len(first.rows)
            while size < self.max_batch_rows and not self._queue.empty():
                item = self._queue.get_nowait()
                batch.append(item)
                size += len(item.rows)
            try:
                await self._write_batch(batch)
            finally:
                if self._sqlite is not None:
                    self._sqlite.end_turn()
                self.pending_rows -= size
                for _ in batch:
                    self._queue.task_done()

    async def _write_batch(self, batch: list[_Pending]) -> None:
        try:
            new_rows = await self._write(batch)
        except SensorGone:  # write each request alone, so only those naming it fail
            if len(batch) > 1:
                for item in batch:
                    await self._write_batch([item])
                return
            _resolve_error(batch, Invalid("a sensor of this request was deleted meanwhile"))
            return
        except Exception as exc:
            if is_unavailable(exc):  # the database is unreachable or failing: 503, never a hang
                log.warning("write of %d requests failed: %s", len(batch), type(exc).__name__)
                await self._drop_connection()  # the next batch starts on a fresh connection
                _resolve_error(batch, _unavailable())
                return
            if len(batch) > 1:  # one request's rows were refused: find it, commit the others
                if refusal(exc) is None:  # an error of unknown kind: start afresh
                    await self._drop_connection()
                half = len(batch) // 2
                await self._write_batch(batch[:half])
                await self._write_batch(batch[half:])
                return
            refused = refusal(exc)
            if refused is None:  # not the data, and not known to be the database: a bug
                log.error("write of one request failed", exc_info=exc)
                await self._drop_connection()
                _resolve_error(batch, _unavailable())
            else:
                log.info("a request's readings were refused by the database: %s", refused)
                _resolve_error(batch, Invalid(f"the database refused these readings: {refused}",
                                              loc=["body"]))
            return
        self.batches += 1
        WRITER_BATCH_ROWS.observe(sum(len(item.rows) for item in batch))
        if self.on_committed is not None:
            try:
                self.on_committed(new_rows)
            except Exception:  # committed all the same: the callers must not wait for a bug
                log.exception("the usage of a committed batch could not be counted")
        if (self.events is not None and self.events.wants(ReadingsCommitted)
                and any(new_rows)):
            try:
                event = committed(new_rows)
            except Exception:  # committed all the same: the callers must not wait for a bug
                log.exception("the event of a committed batch could not be built")
            else:
                self.events.publish([event])  # never raises, never blocks
        for item, new in zip(batch, new_rows):
            self.rows_written += len(new)
            if not item.future.done():
                item.future.set_result(len(new))

    async def _write(self, batch: list[_Pending]) -> list[list[Row]]:
        requests = [item.rows for item in batch]
        await self.partitions.ensure(months_of(requests))
        if self._sqlite is None:
            conn = await self._connection()
            raw = (await conn.get_raw_connection()).driver_connection
            return await self._postgresql.write(raw, requests)
        return await self._sqlite.write(requests)


def months_of(requests: Sequence[Sequence[Row]]) -> set[tuple[int, int]]:
    """The months whose partitions the requests' rows need: each row's month, and for a row
    the server timed the month after it too. Such a row whose microsecond is taken is
    stored a microsecond later, as many times as it takes (``pgwrite``): at the last
    microsecond of a month that is the next month, which must then exist before the batch's
    transaction starts (creating a partition inside it would wait for the other writers'
    locks on ``readings`` while holding its own). Moving one microsecond per key taken, a
    row cannot reach the month after that."""
    stamps = {row[1] for rows in requests for row in rows}  # a body entry's rows share one
    months = {month_of(ts) for ts in stamps}
    for ts in {row[1] for rows in requests for row in rows if row[6].server_timed}:
        months.add(month_after(*month_of(ts)))
    return months


def _unavailable() -> Unavailable:
    return Unavailable("the database is unavailable; retry shortly", headers={"Retry-After": "5"})


def _resolve_error(batch: list[_Pending], error: Exception) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(error)
