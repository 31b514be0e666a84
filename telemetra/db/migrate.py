"""Run Alembic migrations on the async engine (``telemetra migrate``, and at ``serve`` start)."""

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.kit.errors import Unavailable

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger("telemetra.db")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    def _run(connection) -> None:
        from alembic.runtime.migration import MigrationContext

        before = MigrationContext.configure(connection).get_current_revision()
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        after = MigrationContext.configure(connection).get_current_revision()
        if after != before:  # one line, instead of Alembic's (quiet unless debugging)
            log.info("database schema migrated from %s to %s", before or "nothing", after)

    sqlite = engine.dialect.name == "sqlite"
    async with engine.connect() as conn:
        if sqlite:
            conn = await conn.execution_options(sqlite_write=True)
            # A migration that rebuilds a table (the only way SQLite alters most things) drops
            # it, and with foreign keys on, dropping a parent deletes its children's rows by
            # cascade. So, as SQLite's documentation prescribes: keys off (outside any
            # transaction, else the pragma is ignored), migrate, check every key, commit.
            await conn.run_sync(_sqlite_pragma, "PRAGMA foreign_keys=OFF")
        try:
            async with conn.begin():
                if engine.dialect.name == "postgresql":
                    # Several processes starting at once migrate one after the other.
                    await conn.execute(text("SELECT pg_advisory_xact_lock(7001)"))
                await conn.run_sync(_run)
                if sqlite:
                    broken = (await conn.execute(text("PRAGMA foreign_key_check"))).all()
                    if broken:
                        raise RuntimeError(f"migration left rows pointing at nothing: {broken}")
        finally:
            if sqlite:
                await conn.run_sync(_sqlite_pragma, "PRAGMA foreign_keys=ON")


def _sqlite_pragma(sync_conn, pragma: str) -> None:
    # On the driver's connection: through SQLAlchemy, the statement would begin a transaction.
    cursor = sync_conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(pragma)
    finally:
        cursor.close()


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


class DatabaseNotReady(Unavailable):
    """The database a command would read is missing, unreachable or not migrated: one line
    naming it and what to do, never a traceback (nor an empty SQLite file left behind)."""

    code = "database_not_ready"


def shown_url(database_url: str) -> str:
    """The URL as a message may show it: without its password."""
    return make_url(database_url).render_as_string(hide_password=True)


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _known_revisions() -> set[str]:
    return {script.revision for script in
            ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def _sqlite_file(engine: AsyncEngine) -> Path | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or (
            engine.url.query.get("mode") == "memory"):
        return None
    return Path(database.removeprefix("file:")).resolve()


async def ensure_migrated(engine: AsyncEngine, database_url: str) -> None:
    """Refuse, naming the URL and ``telemetra migrate``, a database that is not there or not
    at this version's schema. A missing SQLite file is never created by asking."""
    url = shown_url(database_url)
    path = _sqlite_file(engine)
    if path is not None and not path.exists():
        raise DatabaseNotReady(
            f"no database at {path} (TELEMETRA_DATABASE_URL={url}): run `telemetra migrate` "
            "to create it, or set TELEMETRA_DATABASE_URL to the database you mean")
    try:
        revision = await current_revision(engine)
    except (DBAPIError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise DatabaseNotReady(f"cannot open the database at {url}: {reason}") from None
    head = head_revision()
    if revision is None:
        raise DatabaseNotReady(f"the database at {url} has no Telemetra tables: run "
                               "`telemetra migrate` first")
    if revision != head and revision not in _known_revisions():
        raise DatabaseNotReady(f"the database at {url} is at schema revision {revision}, "
                               f"newer than this Telemetra's {head}: upgrade Telemetra")
    if revision != head:
        raise DatabaseNotReady(f"the database at {url} is at schema revision {revision}, this "
                               f"Telemetra needs {head}: run `telemetra migrate`")
