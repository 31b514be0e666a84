"""Hot SELECTs run directly on the driver connection, still defined by SQLAlchemy statements.

``conn.execute`` spends about 0.1 ms on every statement before the database sees it (cache
key, greenlet switches, the DB-API adapter, Row objects) and then converts every value of
the result again. For a query answered from a few index pages that is most of its time.
A ``DirectQuery`` compiles its statement once for a dialect, binds values through the
statement's own types (e.g. ``ReadingTime`` to epoch microseconds on SQLite) and converts
the result through them too, so the SQL sent and the values returned are what
``conn.execute`` would send and return; only the per-execution machinery is skipped. Errors
are raised as SQLAlchemy's own exceptions (``DataError``, ``OperationalError``...).
"""

import sqlite3
from collections.abc import Callable, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any

import asyncpg
from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

_DRIVER_ERRORS = {"postgresql": (asyncpg.PostgresError, asyncpg.InterfaceError),
                  "sqlite": (sqlite3.Error,)}


@lru_cache(maxsize=512)
def direct_query(statement: Select, dialect: Dialect) -> "DirectQuery":
    """The statement compiled for this dialect (statements are built once per shape)."""
    return DirectQuery(statement, dialect)


class DirectQuery:
    """A SELECT compiled once for one dialect; ``fetch`` runs it on the driver connection
    (in the connection's transaction, if it has begun one). Values given when the statement
    was built (``literal(1)``, ``limit(1)``) are part of its SQL text, parameters named by
    ``bindparam`` are bound on each ``fetch``: meant for statements built once per shape."""

    def __init__(self, statement: Select, dialect: Dialect) -> None:
        self._dialect = dialect
        self._compiled = _compiler_class(dialect.statement_compiler)(dialect, statement)
        bind_processors = {
            name: processor for bind, name in self._compiled.bind_names.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect))}
        self._positions = [(name, bind_processors.get(name))
                           for name in self._compiled.positiontup]
        self._expanding = bool(self._compiled.post_compile_params)
        self._types = [column.type for column in statement.selected_columns]
        self._postgres = dialect.name == "postgresql"
        self._errors = _DRIVER_ERRORS[dialect.name]
        # asyncpg converts by the column types the server reports: known after a first run.
        self._converters: list[tuple[int, Callable, bool]] | None = (
            None if self._postgres else self._converters_for([None] * len(self._types)))

    async def fetch(self, conn: AsyncConnection, params: dict[str, Any]) -> list[Sequence]:
        """All rows, as sequences in the order of the statement's columns."""
        sql, args = self._bind(params)
        driver = await _driver_connection(conn)
        try:
            if not self._postgres:
                rows = await driver.execute_fetchall(sql, args)
            elif self._converters is None:
                prepared = await driver.prepare(sql)
                self._converters = self._converters_for(
                    [attribute.type.oid for attribute in prepared.get_attributes()])
                rows = await prepared.fetch(*args)
            else:
                rows = await driver.fetch(sql, *args)
        except self._errors as error:
            raise DBAPIError.instance(sql, args, error, self._errors,
                                      dialect=self._dialect) from error
        return self._convert(rows)

    def _bind(self, params: dict[str, Any]) -> tuple[str, list]:
        if not self._expanding:
            return self._compiled.string, [params[name] if processor is None
                                           else processor(params[name])
                                           for name, processor in self._positions]
        # An IN list gets a placeholder per value: SQL and positions for these values.
        state = self._compiled.construct_expanded_state(params, escape_names=False)
        processors = {**dict(self._positions), **state.processors}
        args = []
        for name in state.positiontup:
            value, processor = state.parameters[name], processors.get(name)
            args.append(value if processor is None else processor(value))
        return state.statement, args

    def _converters_for(self, driver_types: list) -> list[tuple[int, Callable, bool]]:
        converters = []
        for index, (type_, driver_type) in enumerate(zip(self._types, driver_types)):
            processor = type_.dialect_impl(self._dialect).result_processor(self._dialect,
                                                                           driver_type)
            if processor is not None:
                converters.append((index, processor, type_.hashable))
        return converters

    def _convert(self, rows: list) -> list[Sequence]:
        if not self._converters or not rows:
            return rows
        columns = [list(map(itemgetter(index), rows)) for index in range(len(self._types))]
        for index, processor, hashable in self._converters:
            values = columns[index]
            if hashable:
                # Many rows share a value (a bucket's start): convert each distinct one once.
                converted = {value: processor(value) for value in set(values)}
                columns[index] = list(map(converted.__getitem__, values))
            else:  # e.g. JSON: every row gets its own (mutable) object
                columns[index] = list(map(processor, values))
        return list(zip(*columns))


@lru_cache(maxsize=8)
def _compiler_class(base: type) -> type:
    class ConstantsInline(base):
        """Renders the statement's own constants (``literal(1)``, ``limit(1)``) into the SQL
        text, as hand-written SQL has them: with them as parameters, PostgreSQL's cached
        generic plan cannot use them (a LIMIT $3 lateral was twice as slow as LIMIT 1)."""

        def visit_bindparam(self, bindparam, **kw):
            if bindparam.value is not None and not bindparam.expanding:
                kw["literal_binds"] = True
            return super().visit_bindparam(bindparam, **kw)

    return ConstantsInline


async def _driver_connection(conn: AsyncConnection) -> Any:
    sync = conn.sync_connection
    if sync is not None and not sync.closed and not sync.invalidated:
        # Already checked out: no need for get_raw_connection()'s greenlet switch (~10 µs).
        return sync.connection.driver_connection
    return (await conn.get_raw_connection()).driver_connection
