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
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, Table, event, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from telemetra.db.engine import create_engine
from telemetra.db.migrate import alembic_config, current_revision, upgrade
from telemetra.db.tables import READINGS_SENSOR_FK, metadata
from telemetra.ingest.partitions import Partitions, month_of
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


def _index_repr(index: dict) -> str:
    # A partial index's predicate is reflected as a TextClause: compare its text, not the
    # object's address.
    options = {name: str(value) for name, value in index.get("dialect_options", {}).items()}
    return repr({**index, "dialect_options": options})


def _snapshot(sync_conn) -> dict:
    """Tables, columns, indexes and constraints as the database reports them."""
    inspector = inspect(sync_conn)
    return {table: {
        "columns": [(c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                    for c in inspector.get_columns(table)],
        "pk": inspector.get_pk_constraint(table),
        "fks": sorted(map(repr, inspector.get_foreign_keys(table))),
        "indexes": sorted(map(_index_repr, inspector.get_indexes(table))),
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


# --- 0005: ids never reused, users' security stamps -------------------------------------------

BEFORE_0005 = "0004"
ID_TABLES = [t.name for t in metadata.sorted_tables
             if [c.name for c in t.primary_key.columns] == ["id"]]
_T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
# The tables 0005 knew (later migrations add others).
LATER_TABLES = {"relayed_events", "alert_rules", "alerts", "alert_pending",
                "webhook_deliveries", "relay_peers", "relayed_readings",
                "usage_counters", "dashboards"}
LATER_COLUMNS = {"reported_online"}  # devices, 0007
LATER_COLUMNS |= {"headers", "timeout_seconds", "last_result", "newest_reading_at",
                  "next_run_at", "lease_until"}  # connectors, 0009
TABLES_0005 = [t for t in metadata.sorted_tables if t.name not in LATER_TABLES]
ID_TABLES_0005 = [name for name in ID_TABLES if name not in LATER_TABLES]


def test_every_table_with_a_surrogate_id_never_reuses_ids_on_sqlite():
    assert set(ID_TABLES) >= {"organizations", "users", "refresh_tokens", "sites", "devices",
                              "sensors", "groups", "device_logs", "commands", "connectors"}
    for name in ID_TABLES:
        assert metadata.tables[name].dialect_options["sqlite"]["autoincrement"], name


def _as_of_0004(table: Table) -> Table:
    """The table as revision 0004 had it (without the columns 0005 adds)."""
    return Table(table.name, MetaData(), *(c._copy() for c in table.columns
                                           if c.name not in {"security_stamp", *LATER_COLUMNS}))


def _as_of_0005(table: Table) -> Table:
    """The table as revision 0005 had it (without the columns later ones add)."""
    return Table(table.name, MetaData(), *(c._copy() for c in table.columns
                                           if c.name not in LATER_COLUMNS))


async def _populate_0004(conn) -> None:
    """Two organizations with a row in every table, and a gap: each table's highest id was
    deleted (that is when SQLite reused it)."""
    rows = {
        "organizations": [dict(id=i, name=f"org{i}", invalid_tags=[]) for i in (1, 2, 3)],
        "users": [dict(id=i, organization_id=1 + i % 2, username=f"user{i}",
                       email=f"user{i}@example.com", password_hash="$argon2id$x",
                       role="owner") for i in (1, 2, 3)],
        "refresh_tokens": [dict(id=i, user_id=1, family="f1", token_hash=f"h{i}",
                                expires_at=_T0 + timedelta(days=30),
                                spent_at=_T0 if i == 1 else None) for i in (1, 2, 3)],
        "sites": [dict(id=i, organization_id=1, name=f"site{i}", latitude=1.5)
                  for i in (1, 2, 3)],
        "devices": [dict(id=i, organization_id=1, site_id=1, owner_id=1, name=f"dev{i}",
                         metadata={"floor": i}, api_key_prefix=f"tdk_abcdefg{i}",
                         api_key_hash=f"hash{i}", last_seen=_T0) for i in (1, 2, 3)],
        "sensors": [dict(id=i, organization_id=1, device_id=1, key=f"k{i}", last_value=2.5,
                         last_ts=_T0) for i in (1, 2, 3)],
        "readings": [dict(sensor_id=s, ts=_T0 + timedelta(seconds=n), value=n + 0.25,
                          flags=1, tags={"t": n}) for s in (1, 2) for n in range(5)],
        "groups": [dict(id=i, organization_id=1, name=f"group{i}") for i in (1, 2, 3)],
        "group_members": [dict(group_id=1, device_id=1), dict(group_id=2, device_id=2)],
        "device_logs": [dict(id=i, organization_id=1, device_id=1, ts=_T0, level="info",
                             message=f"log {i}") for i in (1, 2, 3)],
        "commands": [dict(id=i, organization_id=1, device_id=1, name="reboot",
                          params={"now": True}, created_by=1) for i in (1, 2, 3)],
        "connectors": [dict(id=i, organization_id=1, name=f"conn{i}", kind="mqtt_topic",
                            device_id=2, topic=f"plain/{i}", key="temp") for i in (1, 2, 3)],
    }
    for table in TABLES_0005:
        # Ids as the database assigns them (1, 2, 3, in order): explicit ones would leave
        # PostgreSQL's sequences behind, as no real database has them.
        values = [{k: v for k, v in row.items() if k != "id"} for row in rows[table.name]]
        await conn.execute(insert(_as_of_0004(table)), values)
        if "id" in table.c:
            assert await conn.scalar(text(f'SELECT MAX(id) FROM "{table.name}"')) == 3
    # Logout's revocations: superseded by sessions in 0005, which drops the table.
    await conn.execute(text("INSERT INTO revoked_access_tokens (jti, expires_at) "
                            "VALUES ('j1', CURRENT_TIMESTAMP)"))
    for name in reversed(ID_TABLES_0005):
        await conn.execute(text(f'DELETE FROM "{name}" WHERE id = 3'))
    if conn.dialect.name == "sqlite":
        # Objects an operator may have added: a rebuild must keep them as they are.
        await conn.execute(text("CREATE INDEX ix_extra_active_devices ON devices (name) "
                                "WHERE status = 'active'"))
        await conn.execute(text("CREATE TRIGGER extra_users_touch AFTER UPDATE OF full_name "
                                "ON users BEGIN UPDATE users SET updated_at = CURRENT_TIMESTAMP "
                                "WHERE id = NEW.id; END"))


async def _rows(conn) -> dict[str, list[tuple]]:
    result = {}
    for table in TABLES_0005:
        columns = [c.name for c in table.columns
                   if c.name not in {"security_stamp", *LATER_COLUMNS}]
        order = ", ".join(f'"{c.name}"' for c in table.primary_key.columns)
        query = text(f'SELECT {", ".join(f"{chr(34)}{c}{chr(34)}" for c in columns)} '
                     f'FROM "{table.name}" ORDER BY {order}')
        result[table.name] = [tuple(row) for row in await conn.execute(query)]
    return result


async def _extra_sqlite_objects(conn) -> list[tuple]:
    return [tuple(r) for r in await conn.execute(text(
        "SELECT type, name, tbl_name, sql FROM sqlite_master "
        "WHERE type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY name"))]


def test_0005_keeps_every_row_index_key_and_trigger_and_ids_are_never_reused(empty_url):
    async def go():
        engine = create_engine(empty_url)
        try:
            await upgrade(engine, BEFORE_0005)
            await Partitions(engine).ensure([month_of(_T0)])
            async with engine.begin() as conn:
                await _populate_0004(conn)
            async with engine.connect() as conn:
                rows_before = await _rows(conn)
                schema_before = await conn.run_sync(_snapshot)
                extras_before = (await _extra_sqlite_objects(conn)
                                 if engine.dialect.name == "sqlite" else [])
            await upgrade(engine, "0005")
            async with engine.connect() as conn:
                rows_after = await _rows(conn)
                schema_after = await conn.run_sync(_snapshot)
                stamps = (await conn.execute(text("SELECT security_stamp FROM users"))).scalars()
                stamps = list(stamps)
                problems = []
                if engine.dialect.name == "sqlite":
                    extras_after = await _extra_sqlite_objects(conn)
                    problems = list(await conn.execute(text("PRAGMA foreign_key_check")))
                    assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
                else:
                    extras_after = []
            # After the migration: delete each table's newest row and add it again. The new
            # row never gets the deleted one's id (children first, so parents still exist).
            reissued = {}
            async with engine.begin() as conn:
                for name in reversed(ID_TABLES_0005):
                    table = _as_of_0005(metadata.tables[name])
                    newest = (await conn.execute(select(table).order_by(table.c.id.desc())
                                                 .limit(1))).mappings().one()
                    values = {k: v for k, v in newest.items() if k != "id"}
                    await conn.execute(text(f'DELETE FROM "{name}" WHERE id = :id'),
                                       {"id": newest["id"]})
                    new_id = (await conn.execute(
                        insert(table).values(values).returning(table.c.id))).scalar()
                    reissued[name] = (newest["id"], new_id)
            return (rows_before, rows_after, schema_before, schema_after, stamps, problems,
                    extras_before, extras_after, reissued)
        finally:
            await engine.dispose()

    (rows_before, rows_after, schema_before, schema_after, stamps, problems,
     extras_before, extras_after, reissued) = run(go())
    assert rows_after == rows_before
    assert sum(map(len, rows_after.values())) >= 30  # not vacuous: rows in every table
    assert all(rows_after.values())
    assert set(schema_after) == set(schema_before) - {"revoked_access_tokens"}
    for table in schema_after:
        for part in ("pk", "fks", "indexes", "uniques"):
            if part == "pk" and schema_before[table][part]["name"] is None:
                continue  # SQLite reports an unnamed key as None either way
            after, before = schema_after[table][part], schema_before[table][part]
            if part == "indexes":  # the operator's extras are compared below, verbatim
                after, before = ([i for i in x if "ix_extra" not in i and "family" not in i]
                                 for x in (after, before))
            assert after == before, (table, part)
    assert ([x for x in extras_after if "family" not in x[1]]
            == [x for x in extras_before if x[2] != "revoked_access_tokens"
                and "family" not in x[1]])
    assert problems == [], f"rows pointing at nothing after the rebuild: {problems}"
    assert len(stamps) == 2 and all(stamps) and len(set(stamps)) == 2
    for name, (deleted_id, new_id) in reissued.items():
        # 3 was deleted before the migration, and the migration cannot know it existed.
        assert new_id > max(deleted_id, 2), f"{name}: id {new_id} given again"
