"""What the writer's two backends share: the row shape, which rows of a batch were new, and
the sensors' latest values."""

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import orjson
from sqlalchemy.exc import DBAPIError, StatementError

from telemetra.readings.flags import INVALID


@dataclass(frozen=True, slots=True)
class Origin:
    """Whose readings rows are, and whether the server gave them their time (shared by all
    the rows of one request that have the same answer, so it costs one reference a row)."""

    device_id: int
    organization_id: int
    server_timed: bool = False


# (sensor_id, ts, value, flags, tags, meta, origin)
Row = tuple[int, datetime, float, int, list | None, dict | None, Origin]
Latest = dict[int, tuple[datetime, float]]  # sensor id -> (ts, value)
ONE_MICROSECOND = timedelta(microseconds=1)


class SensorGone(Exception):
    """A sensor of the batch was deleted while its readings waited: the writer then writes
    each request alone, so that only the requests naming it fail."""


# What a request's own rows can make the database (or the encoding before it) refuse; a batch
# failing with one of these is split until the request to blame fails alone.
_REFUSALS = (ValueError, TypeError, ArithmeticError, asyncpg.DataError,
             asyncpg.IntegrityConstraintViolationError, asyncpg.ProgramLimitExceededError,
             sqlite3.DataError, sqlite3.IntegrityError)
# The database is gone or failing, whatever was written: every request of the batch waits.
_UNAVAILABLE = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.InsufficientResourcesError, asyncpg.OperatorInterventionError,
                asyncpg.TransactionRollbackError, sqlite3.OperationalError)
_MAX_REASON = 200


def _cause(exc: BaseException) -> BaseException:
    """The driver's error under SQLAlchemy's wrapper (partitions go through SQLAlchemy)."""
    if isinstance(exc, (DBAPIError, StatementError)) and exc.orig is not None:
        return getattr(exc.orig, "__cause__", None) or exc.orig
    return exc


def is_unavailable(exc: BaseException) -> bool:
    """The batch failed because the database is unreachable or failing, not for its data."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    cause = _cause(exc)
    # asyncpg's own DataError (an argument it cannot encode) is an InterfaceError and a ValueError.
    return isinstance(cause, _UNAVAILABLE) and not isinstance(cause, ValueError)


def refusal(exc: BaseException) -> str | None:
    """Why the database refused one request's rows, in its words (first line, bounded), when
    the rows were the cause; None for anything else."""
    cause = _cause(exc)
    if not isinstance(cause, _REFUSALS):
        return None
    reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    return reason[:_MAX_REASON]


def to_json(value) -> str | None:
    """Tags and meta as JSON text, for both databases' bulk paths."""
    return None if value is None else orjson.dumps(value).decode()


def note_latest(latest: Latest, rows: Sequence[Row]) -> None:
    """Fold the valid rows into the newest value per sensor."""
    get = latest.get
    for row in rows:  # per row: the flag tested here, not through a call (a third of it)
        if not row[3] & INVALID:
            current = get(row[0])
            if current is None or current[0] < row[1]:
                latest[row[0]] = (row[1], row[2])


def latest_columns(latest: Latest) -> tuple[list[int], list[datetime], list[float]]:
    """The latest values as three columns, by sensor id: every writer updates the sensors in
    the same order, so two processes' batches never wait for each other in a cycle."""
    ids = sorted(latest)
    return ids, [latest[i][0] for i in ids], [latest[i][1] for i in ids]


def attribute(requests: Sequence[Sequence[Row]], inserted: set
              ) -> tuple[list[list[Row]], list[tuple[int, int, Row]]]:
    """Per request, its rows that were new (the first row holding a new key claims it), and
    the server-timed rows that found their key taken, as (request, position, row): those are
    never re-sends and get written again a microsecond later (``retime``)."""
    new_rows, retry = [], []
    for index, rows in enumerate(requests):
        new = []
        for position, row in enumerate(rows):  # a key twice in one request is new only once
            key = (row[0], row[1])
            if key in inserted:
                inserted.discard(key)
                new.append(row)
            elif row[6].server_timed:
                retry.append((index, len(new), later(row)))
                new.append(row)  # a placeholder, replaced once a free microsecond is found
        new_rows.append(new)
    return new_rows, retry


def retime(new_rows: list[list[Row]], retry: list[tuple[int, int, Row]], inserted: set
           ) -> list[tuple[int, int, Row]]:
    """After writing the ``retry`` rows (already moved on by a microsecond): put those that
    were stored in their place in ``new_rows``; the others move on by one more microsecond
    and are returned, to be written again."""
    again = []
    for index, position, row in retry:
        key = (row[0], row[1])
        if key in inserted:
            inserted.discard(key)
            new_rows[index][position] = row
        else:
            again.append((index, position, later(row)))
    return again


def later(row: Row) -> Row:
    """The row one microsecond later."""
    return (row[0], row[1] + ONE_MICROSECOND, *row[2:])
