"""ids never reused on SQLite; users' security stamps; sessions replace revoked access tokens

SQLite gave a deleted row's id (the highest) to the next row, so a deleted user's access token
answered as the next user, in any organization. AUTOINCREMENT stops that, and SQLite can only
add it by rebuilding the table. The rebuild copies each table's own CREATE statement, indexes
and triggers from sqlite_master, changing only the id column: whatever else the table has
(including objects an operator added) stays as it is. telemetra.db.migrate runs migrations
with foreign keys off on SQLite, so dropping the old table does not cascade to its children,
and checks every key before committing. PostgreSQL's sequences never reuse ids: nothing to do.

Access tokens now carry the user's security stamp and their session (the refresh-token
family), both checked on every request (an index on (family, revoked_at) keeps that one
seek); revoked_access_tokens, which logout filled, is no longer needed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import re
import secrets

import sqlalchemy as sa
from alembic import op

import telemetra.db.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ID_TABLES = ("organizations", "users", "refresh_tokens", "sites", "devices", "sensors",
             "groups", "device_logs", "commands", "connectors")
_TABLE_PK = re.compile(r",\s*CONSTRAINT (\w+) PRIMARY KEY \(id\)")
_ID_COLUMN = re.compile(r"(\(\s*id INTEGER NOT NULL)(,)")
_ID_AUTOINCREMENT = re.compile(r"(\(\s*id INTEGER NOT NULL) CONSTRAINT (\w+) PRIMARY KEY "
                               r"AUTOINCREMENT")


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("users", sa.Column("security_stamp", sa.String(length=32), nullable=True))
    ids = bind.execute(sa.text("SELECT id FROM users")).scalars().all()
    if ids:
        bind.execute(sa.text("UPDATE users SET security_stamp = :stamp WHERE id = :id"),
                     [{"id": i, "stamp": secrets.token_hex(16)} for i in ids])
    op.drop_table("revoked_access_tokens")
    # The per-request session check: one seek, however many tokens a family or user has.
    op.drop_index("ix_refresh_tokens_family", table_name="refresh_tokens")
    op.create_index("ix_refresh_tokens_family_revoked_at", "refresh_tokens",
                    ["family", "revoked_at"], unique=False)
    if bind.dialect.name != "sqlite":
        op.alter_column("users", "security_stamp", nullable=False)
        return
    _require_foreign_keys_off(bind)
    for table in ID_TABLES:
        _rebuild(bind, table, _with_autoincrement)
        # AUTOINCREMENT continues above the highest id ever recorded here; ids deleted
        # before this migration left no trace, so the highest present is all there is.
        bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = :t"), {"t": table})
        bind.execute(sa.text(f'INSERT INTO sqlite_sequence (name, seq) '
                             f'SELECT :t, COALESCE(MAX(id), 0) FROM "{table}"'), {"t": table})


def downgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "revoked_access_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("expires_at", telemetra.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_revoked_access_tokens")),
    )
    op.create_index(op.f("ix_revoked_access_tokens_expires_at"), "revoked_access_tokens",
                    ["expires_at"], unique=False)
    op.drop_index("ix_refresh_tokens_family_revoked_at", table_name="refresh_tokens")
    op.create_index(op.f("ix_refresh_tokens_family"), "refresh_tokens", ["family"],
                    unique=False)
    if bind.dialect.name != "sqlite":
        op.drop_column("users", "security_stamp")
        return
    _require_foreign_keys_off(bind)
    bind.exec_driver_sql("ALTER TABLE users DROP COLUMN security_stamp")
    for table in ID_TABLES:
        _rebuild(bind, table, _without_autoincrement)
        bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = :t"), {"t": table})


def _require_foreign_keys_off(bind) -> None:
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        # Dropping a parent table with keys on deletes its children's rows.
        raise RuntimeError("this migration rebuilds tables: run it with `telemetra migrate`, "
                           "which turns SQLite's foreign keys off meanwhile")


def _with_autoincrement(table: str, sql: str) -> str:
    if "AUTOINCREMENT" in sql.upper():
        return sql
    pk = _TABLE_PK.search(sql)
    if pk is None:
        raise RuntimeError(f"unexpected definition of table {table}: {sql}")
    sql = _TABLE_PK.sub("", sql, count=1)
    sql, found = _ID_COLUMN.subn(rf"\1 CONSTRAINT {pk.group(1)} PRIMARY KEY AUTOINCREMENT\2",
                                 sql, count=1)
    if not found:
        raise RuntimeError(f"unexpected id column in table {table}: {sql}")
    if table == "users":
        sql, found = re.subn(r"security_stamp VARCHAR\(32\)(?! NOT NULL)",
                             "security_stamp VARCHAR(32) NOT NULL", sql, count=1)
    return sql


def _without_autoincrement(table: str, sql: str) -> str:
    match = _ID_AUTOINCREMENT.search(sql)
    if match is None:
        return sql
    sql = _ID_AUTOINCREMENT.sub(r"\1", sql, count=1)
    end = sql.rindex(")")
    return f"{sql[:end].rstrip()}, \n\tCONSTRAINT {match.group(2)} PRIMARY KEY (id)\n)"


def _rebuild(bind, table: str, change) -> None:
    """SQLite's own recipe for a schema change it cannot ALTER: create the new table, copy the
    rows, drop the old one, rename, and create its indexes and triggers again."""
    create = bind.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' "
                                  "AND name = :t"), {"t": table}).scalar_one()
    extras = bind.execute(sa.text(
        "SELECT sql FROM sqlite_master WHERE tbl_name = :t AND type IN ('index', 'trigger') "
        "AND sql IS NOT NULL ORDER BY type, name"), {"t": table}).scalars().all()
    columns = ", ".join(f'"{row[1]}"' for row in bind.exec_driver_sql(
        f'PRAGMA table_info("{table}")'))
    new = f"_rebuild_{table}"
    head = re.compile(rf'^CREATE TABLE ("?){re.escape(table)}\1 \(')
    new_sql, found = head.subn(f'CREATE TABLE "{new}" (', change(table, create), count=1)
    if not found:
        raise RuntimeError(f"unexpected definition of table {table}: {create}")
    bind.exec_driver_sql(new_sql)
    bind.exec_driver_sql(f'INSERT INTO "{new}" ({columns}) SELECT {columns} FROM "{table}"')
    bind.exec_driver_sql(f'DROP TABLE "{table}"')
    # Legacy renaming: other tables' triggers or views naming this table are not re-parsed
    # while it is missing, and references to it stay as they are written.
    bind.exec_driver_sql("PRAGMA legacy_alter_table=ON")
    try:
        bind.exec_driver_sql(f'ALTER TABLE "{new}" RENAME TO "{table}"')
    finally:
        bind.exec_driver_sql("PRAGMA legacy_alter_table=OFF")
    for sql in extras:
        bind.exec_driver_sql(sql)
