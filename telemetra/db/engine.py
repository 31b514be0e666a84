"""Build the async engine from a plain database URL (the async driver is picked here).

Query time limit: a connection given the execution option ``query_timeout`` (seconds; the
request connections of ``kit.db``) has each transaction limited to it. PostgreSQL gets
``SET LOCAL statement_timeout`` (each statement; it ends with the transaction, so migrations,
the writer's COPY and maintenance jobs, on connections without the option, have none).
SQLite has no statement timeout: a progress handler on every connection of the engine aborts
whatever runs past the transaction's deadline. Either way the query fails with an error that
``is_query_timeout`` recognises, and the connection stays usable.
"""

import sqlite3
import time

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util.concurrency import await_

from telemetra.kit.errors import Invalid

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg",
                  "postgres": "postgresql+asyncpg"}


def async_url(database_url: str) -> URL:
    """``sqlite:///x.db`` -> ``sqlite+aiosqlite:///x.db``; ``postgresql://`` -> asyncpg."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise Invalid(f"unsupported database URL scheme {url.drivername!r}: use sqlite:// or "
                      "postgresql://", loc=["TELEMETRA_DATABASE_URL"])
    return url.set(drivername=_ASYNC_DRIVERS[backend])


def configure_sqlite(dbapi_connection, _record=None) -> None:
    """Every SQLite connection of Telemetra's, the engine's and the readings writer's own."""
    # BEGIN is explicit (see _sqlite_begin) instead of pysqlite's implicit one.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL: a transaction acknowledged to a client survives power loss, not only a crash.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


# SQLite calls the progress handler every this many virtual-machine instructions (well under
# a millisecond of work): often enough for a deadline, rarely enough to cost nothing.
_PROGRESS_STEPS = 50_000
_DEADLINE = "telemetra_deadline"
_PG_QUERY_CANCELED = "57014"  # statement_timeout (or a cancel request)


class _Deadline:
    """A SQLite connection's deadline, read by its progress handler in aiosqlite's thread."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at: float | None = None

    def __call__(self) -> bool:
        return self.at is not None and time.monotonic() > self.at  # True aborts the query


def _sqlite_connect(dbapi_connection, record) -> None:
    configure_sqlite(dbapi_connection)
    deadline = record.info[_DEADLINE] = _Deadline()
    await_(dbapi_connection.driver_connection.set_progress_handler(deadline, _PROGRESS_STEPS))


def _sqlite_begin(conn) -> None:
    options = conn.get_execution_options()
    timeout = options.get("query_timeout")
    if timeout:
        conn.connection.info[_DEADLINE].at = time.monotonic() + timeout
    # Writers take the write lock up front (BEGIN IMMEDIATE): a deferred transaction that
    # reads and then writes fails at once with "database is locked" when another writer
    # committed in between, while IMMEDIATE waits for busy_timeout instead.
    mode = "IMMEDIATE" if options.get("sqlite_write") else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


def _sqlite_end(conn) -> None:
    deadline = conn.connection.info.get(_DEADLINE) if not conn.invalidated else None
    if deadline is not None:
        deadline.at = None


def _sqlite_checkin(dbapi_connection, record) -> None:
    deadline = record.info.get(_DEADLINE)
    if deadline is not None:
        deadline.at = None


def _pg_begin(conn) -> None:
    timeout = conn.get_execution_options().get("query_timeout")
    if timeout:
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, round(timeout * 1000))}")


def is_query_timeout(exc: BaseException) -> bool:
    """Whether a database error is a query stopped by its time limit."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(orig, sqlite3.OperationalError):
        return str(orig) == "interrupted"
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return sqlstate == _PG_QUERY_CANCELED


def create_engine(database_url: str, *, query_timeout: float | None = None,
                  **kwargs) -> AsyncEngine:
    """``query_timeout``: the longest time limit the engine's queries are given, so that
    asyncpg's own guard against a hung connection (every statement's, 30 s at least) stays
    above it and a slow query ends with PostgreSQL's statement_timeout, not the guard."""
    url = async_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        event.listen(engine.sync_engine, "commit", _sqlite_end)
        event.listen(engine.sync_engine, "rollback", _sqlite_end)
        event.listen(engine.sync_engine.pool, "checkin", _sqlite_checkin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    guard = max(30.0, (query_timeout or 0) + 10)
    kwargs.setdefault("connect_args", {"timeout": 10, "command_timeout": guard})
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "begin", _pg_begin)
    return engine
