"""Column types that behave the same on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import JSON, BigInteger, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """An aware UTC datetime everywhere; SQLite stores it naive, PostgreSQL as timestamptz."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class ReadingTime(TypeDecorator):
    """The readings table's time: ``timestamptz`` on PostgreSQL, integer epoch microseconds on
    SQLite, where text timestamps would make the hot table larger and bucketing slow."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if dialect.name == "sqlite":
            return to_micros(value)
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect) -> datetime | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return from_micros(value)
        return value.astimezone(UTC)

    def result_processor(self, dialect, coltype):
        # Per value of every result: skip the generic wrapper where it does nothing or little.
        if dialect.driver == "asyncpg":
            return None  # asyncpg returns timestamptz as aware UTC datetimes already
        if dialect.name == "sqlite":
            return _from_micros_or_none
        return super().result_processor(dialect, coltype)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros_or_none(micros: int | None) -> datetime | None:
    return None if micros is None else _EPOCH + timedelta(0, 0, micros)


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(0, 0, micros)  # positional: a third faster than microseconds=
