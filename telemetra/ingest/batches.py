"""What the writer's two backends share: the row shape, which rows of a batch were new, and
the sensors' latest values."""

import sqlite3
from collections.abc import Sequence
from datetime import datetime

import asyncpg
import orjson
from sqlalchemy.exc import DBAPIError, StatementError

from telemetra.readings.flags import is_valid

# (sensor_id, ts, value, flags, tags, meta)
Row = tuple[int, datetime, float, int, list | None, dict | None]
Latest = dict[int, tuple[datetime, float]]  # sensor id -> (ts, value)


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
    for sensor_id, ts, value, flags, _tags, _meta in rows:
        if is_valid(flags):
            current = latest.get(sensor_id)
            if current is None or current[0] < ts:
                latest[sensor_id] = (ts, value)


def attribute(requests: Sequence[Sequence[Row]], inserted: set) -> tuple[list[int], Latest]:
    """Per request, how many rows were new (the first row holding a new key claims it),
    and the latest values among the new rows."""
    counts, latest = [], {}
    for rows in requests:
        new = []
        for row in rows:  # a key twice in one request (one MQTT batch) is new only once
            key = (row[0], row[1])
            if key in inserted:
                inserted.discard(key)
                new.append(row)
        note_latest(latest, new)
        counts.append(len(new))
    return counts, latest
