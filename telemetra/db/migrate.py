"""Run Alembic migrations on the async engine (``telemetra migrate``, and at ``serve`` start)."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    def _run(connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

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
