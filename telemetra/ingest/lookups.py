"""The read-only queries of the ingestion hot path on a cache miss (a device by its key, a
device's sensors), run where they cost least.

In a fleet, each process meets each device for the first time now and then, and that request
reads the database. Through SQLAlchemy and aiosqlite, one such query is a dozen hops to
aiosqlite's thread and back (a connection from the pool, BEGIN, a cursor, the statement, its
rows, closing the cursor, ROLLBACK): measured, about 900 µs of CPU a lookup, against 40-70 µs
on a sqlite3 connection of its own in one hop, while a whole request with its caches hot costs
about 500. So on SQLite these queries run as the writer's batches do (``ingest.sqlitewrite``):
on a thread and a connection of their own, outside any transaction (each statement reads the
latest commit). On PostgreSQL they run on the engine's pool, as before.

Each query is one SQLAlchemy statement; on SQLite its text compiled once is what runs. Errors
of the SQLite side are ``Unavailable`` (503), as the database's errors are elsewhere.
"""

import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.db.engine import configure_sqlite
from telemetra.db.tables import devices, sensors
from telemetra.kit.errors import Unavailable

# (id, organization_id, status, api_key_hash) of the device whose key has this clear prefix
DEVICE_BY_KEY_PREFIX = (
    select(devices.c.id, devices.c.organization_id, devices.c.status, devices.c.api_key_hash)
    .where(devices.c.api_key_prefix == bindparam("prefix")))
# (id, key, valid_min, valid_max) of up to ``limit`` sensors of a device
SENSORS_OF_DEVICE = (
    select(sensors.c.id, sensors.c.key, sensors.c.valid_min, sensors.c.valid_max)
    .where(sensors.c.device_id == bindparam("device_id")).limit(bindparam("limit")))


class EngineLookups:
    """The queries on the engine's own connections (PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def device_by_key_prefix(self, prefix: str) -> Sequence[Any] | None:
        """``(id, organization_id, status, api_key_hash)`` of the device, or None."""
        async with self.engine.connect() as conn:
            return (await conn.execute(DEVICE_BY_KEY_PREFIX, {"prefix": prefix})).first()

    async def sensors_of_device(self, device_id: int, limit: int) -> list[Sequence[Any]]:
        """``(id, key, valid_min, valid_max)`` of up to ``limit`` sensors of the device."""
        async with self.engine.connect() as conn:
            return list((await conn.execute(SENSORS_OF_DEVICE,
                                            {"device_id": device_id, "limit": limit})).all())

    async def close(self) -> None:
        """Nothing of its own to close: the engine's pool is the engine's."""


def _compiled(statement) -> tuple[str, tuple[str, ...], dict]:
    """The statement's SQLite text, its parameters' names in order, and their defaults (a
    LIMIT brings an OFFSET of 0)."""
    compiled = statement.compile(dialect=sqlite_dialect.dialect())
    return compiled.string, tuple(compiled.positiontup), dict(compiled.params)


class SqliteLookups:
    """The queries on a sqlite3 connection of their own, on a thread of their own."""

    def __init__(self, database: str) -> None:
        self.database = database
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="telemetra-sqlite-lookups")
        self._db: sqlite3.Connection | None = None  # used on the executor's thread only
        self._by_prefix = _compiled(DEVICE_BY_KEY_PREFIX)
        self._of_device = _compiled(SENSORS_OF_DEVICE)

    async def device_by_key_prefix(self, prefix: str) -> Sequence[Any] | None:
        """``(id, organization_id, status, api_key_hash)`` of the device, or None."""
        rows = await self._run(self._by_prefix, {"prefix": prefix})
        return rows[0] if rows else None

    async def sensors_of_device(self, device_id: int, limit: int) -> list[Sequence[Any]]:
        """``(id, key, valid_min, valid_max)`` of up to ``limit`` sensors of the device."""
        return await self._run(self._of_device, {"device_id": device_id, "limit": limit})

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._drop)
        self._executor.shutdown()

    async def _run(self, query: tuple[str, tuple[str, ...], dict], params: dict) -> list:
        sql, names, defaults = query
        values = tuple(params[name] if name in params else defaults[name] for name in names)
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, self._fetch, sql, values)
        except sqlite3.Error as exc:
            raise Unavailable("the database is unavailable, try again shortly",
                              headers={"Retry-After": "5"}) from exc

    def _fetch(self, sql: str, params: tuple) -> list:  # on the executor's thread
        if self._db is None:
            db = sqlite3.connect(self.database, timeout=15)
            configure_sqlite(db)  # autocommit: each statement reads the latest commit
            db.execute("PRAGMA query_only=ON")
            self._db = db
        try:
            return self._db.execute(sql, params).fetchall()  # all: the read ends here
        except sqlite3.Error:
            self._drop()  # the next lookup starts on a fresh connection
            raise

    def _drop(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            try:
                db.close()
            except sqlite3.Error:
                pass


def lookups_for(engine: AsyncEngine) -> EngineLookups | SqliteLookups:
    """SQLite's own connection for a database file; the engine's pool otherwise (PostgreSQL,
    and an in-memory SQLite, which only the engine's connections can see)."""
    database = engine.url.database
    if (engine.dialect.name == "sqlite" and database and database != ":memory:"
            and not database.startswith("file:")):
        return SqliteLookups(database)
    return EngineLookups(engine)
