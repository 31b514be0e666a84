"""Migrations, on both backends, from an EMPTY database (no template, no tables at all).

- Upgrading to head builds exactly the schema ``telemetra.db.tables`` describes: Alembic's
  autogenerate comparison (types, nullability, server defaults, indexes, unique and foreign
  keys) finds nothing to change.
- A second upgrade is a no-op: nothing but reads (and PostgreSQL's migration lock) runs.
- SQLite connections from ``telemetra.db.engine.create_engine`` run in WAL mode with foreign
  keys enforced.
"""

import asyncio
import pprint
import uuid
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect, text
from sqlalchemy.exc import IntegrityError

from telemetra.db.engine import create_engine
from telemetra.db.migrate import alembic_config, current_revision, upgrade
from telemetra.db.tables import READINGS_SENSOR_FK, metadata
from tests import pgcluster

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
# Statements that would change a database; the second upgrade must not run any.
WRITES = ("CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "COMMENT")


@pytest.fixture
def empty_url(backend, request, tmp_path) -> Iterator[str]:
    """A database with nothing in it, not even Alembic's version table."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    admin_url = request.getfixturevalue("pg_admin_url")
    name = f"telemetra_empty_{uuid.uuid4().hex[:10]}"
    url = pgcluster.create_database(admin_url, name)  # no template: really empty
    yield url
    pgcluster.drop_database(admin_url, name)


def _schema_diff(sync_conn) -> list:
    postgresql = sync_conn.dialect.name == "postgresql"

    def include(obj, name, type_, reflected, compare_to) -> bool:
        # PostgreSQL has a trigger in its place (migration 0004).
        return not (postgresql and type_ == "foreign_key_constraint"
                    and name == READINGS_SENSOR_FK)

    context = MigrationContext.configure(sync_conn, opts={
        "compare_type": True, "compare_server_default": True, "include_object": include})
    return compare_metadata(context, metadata)


def _snapshot(sync_conn) -> dict:
    """Tables, columns, indexes and constraints as the database reports them."""
    inspector = inspect(sync_conn)
    return {table: {
        "columns": [(c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                    for c in inspector.get_columns(table)],
        "pk": inspector.get_pk_constraint(table),
        "fks": sorted(map(repr, inspector.get_foreign_keys(table))),
        "indexes": sorted(map(repr, inspector.get_indexes(table))),
        "uniques": sorted(map(repr, inspector.get_unique_constraints(table))),
    } for table in sorted(inspector.get_table_names())}


def run(coroutine):
    return asyncio.run(coroutine)


def test_upgrade_from_empty_builds_exactly_the_tables(empty_url):
    async def go() -> tuple[list, set, str | None]:
        engine = create_engine(empty_url)
        try:
            async with engine.connect() as conn:
                before = await conn.run_sync(lambda c: inspect(c).get_table_names())
            assert before == [], f"not an empty database: {before}"
            await upgrade(engine)
            async with engine.connect() as conn:
                diff = await conn.run_sync(_schema_diff)
                tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            return diff, tables, await current_revision(engine)
        finally:
            await engine.dispose()

    diff, tables, revision = run(go())
    assert diff == [], ("the migrated schema differs from telemetra.db.tables:\n"
                        + pprint.pformat(diff, width=100))
    assert tables == set(metadata.tables) | {"alembic_version"}
    assert revision == HEAD


def test_a_second_upgrade_is_a_no_op(empty_url):
    async def go() -> tuple[dict, dict, list[str], str | None]:
        engine = create_engine(empty_url)
        try:
            await upgrade(engine)
            async with engine.connect() as conn:
                first = await conn.run_sync(_snapshot)
            statements: list[str] = []

            def record(conn, cursor, statement, parameters, context, executemany):
                statements.append(statement)

            event.listen(engine.sync_engine, "before_cursor_execute", record)
            try:
                await upgrade(engine)
            finally:
                event.remove(engine.sync_engine, "before_cursor_execute", record)
            async with engine.connect() as conn:
                second = await conn.run_sync(_snapshot)
            return first, second, statements, await current_revision(engine)
        finally:
            await engine.dispose()

    first, second, statements, revision = run(go())
    writes = [s for s in statements if s.lstrip().upper().startswith(WRITES)]
    assert writes == [], "the second upgrade changed the database:\n" + "\n".join(writes)
    assert second == first
    assert revision == HEAD


def test_sqlite_connections_use_wal_and_enforce_foreign_keys(tmp_path):
    url = f"sqlite:///{tmp_path / 'pragmas.db'}"

    async def go() -> tuple[str, int, str, bool]:
        engine = create_engine(url)
        try:
            await upgrade(engine)
            async with engine.connect() as conn:
                journal_mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
                foreign_keys = (await conn.execute(text("PRAGMA foreign_keys"))).scalar()
                synchronous = (await conn.execute(text("PRAGMA synchronous"))).scalar()
            # Enforced, not only switched on: a row pointing at no organization is refused.
            refused = False
            try:
                async with engine.begin() as conn:
                    await conn.execute(text(
                        "INSERT INTO sites (organization_id, name, created_at, updated_at) "
                        "VALUES (424242, 'orphan', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
            except IntegrityError:
                refused = True
            return journal_mode, foreign_keys, synchronous, refused
        finally:
            await engine.dispose()

    journal_mode, foreign_keys, synchronous, refused = run(go())
    assert journal_mode == "wal"
    assert foreign_keys == 1
    assert synchronous == 2  # FULL
    assert refused, "an orphan row was stored: foreign keys are not enforced"
