"""Monthly range partitions of ``readings`` on PostgreSQL (SQLite has one plain table).

Partitions are created ahead at start (the previous month to three months on) and on demand
when a write or import touches a month that has none. Retention drops whole partitions.
"""

import logging
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("telemetra.partitions")

_LOCK_KEY = 7002  # advisory lock: processes create partitions one at a time


def month_of(moment: datetime) -> tuple[int, int]:
    moment = moment.astimezone(UTC)
    return moment.year, moment.month


def month_after(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, 1, tzinfo=UTC)
    return start, datetime(*month_after(year, month), 1, tzinfo=UTC)


def partition_name(year: int, month: int) -> str:
    return f"readings_p{year:04d}{month:02d}"


def months_around(moment: datetime, before: int = 1, after: int = 3) -> list[tuple[int, int]]:
    year, month = month_of(moment)
    for _ in range(before):
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    months = []
    for _ in range(before + after + 1):
        months.append((year, month))
        year, month = month_after(year, month)
    return months


class Partitions:
    """Knows which monthly partitions exist, and creates missing ones."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.enabled = engine.dialect.name == "postgresql"
        self.known: set[tuple[int, int]] = set()

    async def ensure(self, months) -> None:
        if not self.enabled:
            return
        missing = sorted(set(months) - self.known)
        if not missing:
            return
        async with self.engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            existing = set((await conn.execute(text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'readings'"
            ))).scalars())
            for year, month in missing:
                name = partition_name(year, month)
                if name not in existing:
                    start, end = month_bounds(year, month)
                    await conn.execute(text(
                        f"CREATE TABLE {name} PARTITION OF readings "
                        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"))
                    log.info("created partition %s", name)
        self.known.update(missing)

    async def drop_before(self, cutoff: datetime) -> list[str]:
        """Drop every partition that ends at or before ``cutoff``; returns their names."""
        if not self.enabled:
            return []
        dropped = []
        async with self.engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            names = (await conn.execute(text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'readings'"
            ))).scalars().all()
            for name in names:
                year, month = int(name[-6:-2]), int(name[-2:])
                if month_bounds(year, month)[1] <= cutoff:
                    await conn.execute(text(f"DROP TABLE {name}"))
                    self.known.discard((year, month))
                    dropped.append(name)
        return dropped
