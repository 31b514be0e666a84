"""The SQLite side of the group-commit writer: a whole batch is one call on the writer's own
thread, on its own sqlite3 connection.

Through aiosqlite every statement is a hop to its thread and back (BEGIN, one executemany a
request, the latest values, COMMIT): measured with one reading a request, the writer's
process sat mostly idle while requests waited for those hops. Here the transaction is one
hop, and the sqlite3 module lets go of the GIL while SQLite works.

Several processes on one file take turns through file locks. Without them they meet at
SQLite's write lock, whose busy handler sleeps ever longer (up to 100 ms a try) while it
waits; a blocked ``flock`` wakes the moment the other writer is done. ``flock`` is not fair,
though: measured with two workers, the process that had just written took the lock straight
back and the other's requests waited up to a second. So a writer that wants its turn holds
a shared lock on ``<db>.writer-queue`` while it waits for ``<db>.writer-lock``, and a writer
that finds someone waiting lets them go first. A writer also takes its turn *before*
gathering its batch, so what arrives while another process writes joins this process's next
batch instead of waiting for the one after.
"""

import asyncio
import fcntl
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.dialects import sqlite as sqlite_dialect

from telemetra.db.engine import configure_sqlite
from telemetra.db.tables import sensors
from telemetra.db.types import to_micros
from telemetra.ingest.batches import (
    Latest,
    Row,
    SensorGone,
    later,
    latest_columns,
    note_latest,
    to_json,
)
from telemetra.kit.errors import Invalid

_INSERT = ("INSERT OR IGNORE INTO readings (sensor_id, ts, value, flags, tags, meta) "
           "VALUES (?, ?, ?, ?, ?, ?)")
_LATEST = ("UPDATE sensors SET last_value = ?, last_ts = ? "
           "WHERE id = ? AND (last_ts IS NULL OR last_ts < ?)")
# sensors.last_ts is stored the way SQLAlchemy stores it on SQLite (naive UTC text).
_last_ts = sensors.c.last_ts.type.bind_processor(sqlite_dialect.dialect())


class SqliteBatches:
    def __init__(self, database: str | None) -> None:
        if not database or database == ":memory:":
            raise Invalid("readings need a SQLite file, not an in-memory database",
                          loc=["TELEMETRA_DATABASE_URL"])
        self.database = database
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="telemetra-sqlite-writer")
        self._db: sqlite3.Connection | None = None  # used on the executor's thread only
        # Held until close.
        self._turn = open(f"{database}.writer-lock", "a+")  # noqa: SIM115
        self._waiting = open(f"{database}.writer-queue", "a+")  # noqa: SIM115

    async def take_turn(self) -> None:
        if not self._turn_at_once():
            await asyncio.get_running_loop().run_in_executor(self._executor, self._wait_turn)

    def end_turn(self) -> None:
        fcntl.flock(self._turn, fcntl.LOCK_UN)

    def _turn_at_once(self) -> bool:
        """The turn, when nobody has it and nobody waits for it."""
        try:
            fcntl.flock(self._waiting, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        try:
            fcntl.flock(self._turn, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            fcntl.flock(self._waiting, fcntl.LOCK_UN)

    def _wait_turn(self) -> None:  # on the writer's thread
        fcntl.flock(self._waiting, fcntl.LOCK_EX)  # those already waiting go first
        fcntl.flock(self._waiting, fcntl.LOCK_SH)  # then this one waits, and says so
        try:
            fcntl.flock(self._turn, fcntl.LOCK_EX)
        finally:
            fcntl.flock(self._waiting, fcntl.LOCK_UN)

    async def write(self, requests: list[Sequence[Row]]) -> list[list[Row]]:
        """Insert each request's rows and the sensors' latest values in one transaction;
        returns the rows of each request that were new (the server-timed ones at the
        microsecond they were stored at)."""
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._write, requests)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._drop)
        self._executor.shutdown()
        self._turn.close()
        self._waiting.close()

    def _write(self, requests: list[Sequence[Row]]) -> list[list[Row]]:
        if self._db is None:
            self._db = sqlite3.connect(self.database, timeout=15, check_same_thread=False)
            configure_sqlite(self._db)
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("SAVEPOINT batch")
            new_rows: list[list[Row]] | list[Sequence[Row]] = requests
            for rows in requests:
                if db.executemany(_INSERT, [
                    (r[0], to_micros(r[1]), r[2], r[3], to_json(r[4]), to_json(r[5]))
                    for r in rows
                ]).rowcount < len(rows):  # a duplicate: say which rows were new
                    db.execute("ROLLBACK TO batch")
                    new_rows = [_insert_one_by_one(db, rows) for rows in requests]
                    break
            db.execute("RELEASE batch")
            latest: Latest = {}
            for rows in new_rows:
                note_latest(latest, rows)
            if latest:
                ids, times, values = latest_columns(latest)
                db.executemany(_LATEST, [(value, _last_ts(ts), sensor_id, _last_ts(ts))
                                         for sensor_id, ts, value in zip(ids, times, values)])
            db.execute("COMMIT")
        except sqlite3.IntegrityError:  # the foreign key: a sensor was deleted meanwhile
            db.rollback()
            raise SensorGone from None
        except BaseException:  # anything else: the next batch starts on a fresh connection
            self._drop()
            raise
        return new_rows

    def _drop(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            try:
                db.close()  # rolls back what was not committed
            except sqlite3.Error:
                pass


def _insert_one_by_one(db: sqlite3.Connection, rows: Sequence[Row]) -> list[Row]:
    """Insert ``rows`` one at a time; the new ones. A server-timed row whose key is taken is
    never a re-send: it is stored at the next free microsecond."""
    new = []
    for row in rows:
        params = [row[0], to_micros(row[1]), row[2], row[3], to_json(row[4]), to_json(row[5])]
        while not db.execute(_INSERT, params).rowcount:
            if not row[6].server_timed:
                break
            row = later(row)
            params[1] += 1
        else:
            new.append(row)
    return new
