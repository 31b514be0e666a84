"""Build the async engine from a plain database URL (the async driver is picked here)."""

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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


def _sqlite_begin(conn) -> None:
    # Writers take the write lock up front (BEGIN IMMEDIATE): a deferred transaction that
    # reads and then writes fails at once with "database is locked" when another writer
    # committed in between, while IMMEDIATE waits for busy_timeout instead.
    mode = "IMMEDIATE" if conn.get_execution_options().get("sqlite_write") else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


def create_engine(database_url: str, **kwargs) -> AsyncEngine:
    url = async_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", configure_sqlite)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("connect_args", {"timeout": 10, "command_timeout": 30})
    return create_async_engine(url, **kwargs)
