"""Usage counted without a write per reading, and the daily readings quota checked without a
query per request.

Each process counts the readings its writer stored (``count``, called by the writer once per
committed batch) and the ingestion it refused, per organization (and device) and UTC day, in
memory. Every ``TELEMETRA_USAGE_FLUSH_SECONDS`` (``flush``) it adds those counts to the shared
``usage_counters`` rows and reads back today's totals of the organizations it checks, which
then include the other processes' counts as of their last flush. So a process's view of a
day's total lags the others' readings by at most about one flush interval each, and a day
may pass its quota by what the other processes stored in that interval (its own readings are
counted at once).

``refuses`` is the quota check: a dict lookup for an organization whose limit is known (one
query for it on first sight, and after its plan changed).
"""

import asyncio
import logging
import time
from collections import Counter
from datetime import UTC, date, datetime
from itertools import repeat
from operator import attrgetter, is_, itemgetter

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.db.tables import organizations, usage_counters
from telemetra.kit.db import write_transaction
from telemetra.orgs.plans import Plans

log = logging.getLogger("telemetra.usage")

DAY_SECONDS = 86_400
# Limits cached longer than this are read again (a plan change is also heard as an event;
# this bounds what a process that missed it believes).
LIMITS_SECONDS = 30.0
ORGANIZATION = 0  # the device_id of an organization's totals
_UNKNOWN = object()
_origin = itemgetter(6)  # a writer row's Origin (telemetra.ingest.batches.Row)
_organization_id = attrgetter("organization_id")


def epoch_day(now: float | None = None) -> int:
    """Days since 1970-01-01, UTC: the day counters are kept by."""
    return int((time.time() if now is None else now) // DAY_SECONDS)


def seconds_to_midnight(now: float | None = None) -> int:
    """Whole seconds until the next midnight UTC (at least 1): when a daily quota resets."""
    now = time.time() if now is None else now
    return max(1, int(DAY_SECONDS - now % DAY_SECONDS + 0.999))


def _date(day: int) -> date:
    return datetime.fromtimestamp(day * DAY_SECONDS, UTC).date()


class UsageMeter:
    def __init__(self, engine: AsyncEngine, plans: Plans) -> None:
        self.engine = engine
        self.plans = plans
        self._day = epoch_day()
        self._counted: Counter[tuple[int, int]] = Counter()  # (org, day) -> stored, unflushed
        self._flushing: Counter[tuple[int, int]] = Counter()  # being added to the table now
        # Added to the table, not yet in ``_shared``: the quota counts them until it is read.
        self._committed: Counter[tuple[int, int]] = Counter()
        # Held while the table and the unflushed counts change together (``flush``), and while
        # the usage endpoint reads both, so it never counts a flush twice or not at all.
        self.consistent = asyncio.Lock()
        # (org, device, day) -> [rate_limited, quota_exceeded] bodies, unflushed
        self._rejected: dict[tuple[int, int, int], list[int]] = {}
        self._flushing_rejected: dict[tuple[int, int, int], list[int]] = {}
        self._limits: dict[int, int | None] = {}  # org -> readings a day (None: no limit)
        self._shared: dict[int, int] = {}  # org -> today's total in the table, as last read
        self._limits_since = time.monotonic()

    # -- the hot path ----------------------------------------------------------------------

    async def refuses(self, organization_id: int, device_id: int, n: int) -> int | None:
        """The organization's daily readings limit if storing ``n`` more readings today would
        pass it (the refusal is counted for the device), else None."""
        limit = self._limits.get(organization_id, _UNKNOWN)
        if limit is _UNKNOWN:
            limit = await self._load(organization_id)
        if limit is None:
            return None
        day = epoch_day()
        if day != self._day:
            self._new_day(day)
        key = (organization_id, day)
        used = (self._shared.get(organization_id, 0) + self._counted.get(key, 0)
                + self._flushing.get(key, 0) + self._committed.get(key, 0))
        if used + n <= limit:
            return None
        self.rejected(organization_id, device_id, "quota_exceeded")
        return limit

    def count(self, new_rows) -> None:
        """The writer's committed batch: each request's new rows (``Row`` lists). A request's
        rows mostly share one ``Origin``, so this is a C loop per request."""
        day = epoch_day()
        counted = self._counted
        for rows in new_rows:
            if not rows:
                continue
            first = rows[0][6]
            if all(map(is_, map(_origin, rows), repeat(first))):
                counted[(first.organization_id, day)] += len(rows)
            else:
                for organization_id, n in Counter(
                        map(_organization_id, map(_origin, rows))).items():
                    counted[(organization_id, day)] += n

    def rejected(self, organization_id: int, device_id: int, why: str) -> None:
        """One ingestion body (request or message) of the device refused: ``why`` is
        ``rate_limited`` or ``quota_exceeded``."""
        key = (organization_id, device_id, epoch_day())
        counts = self._rejected.get(key)
        if counts is None:
            counts = self._rejected[key] = [0, 0]
        counts[0 if why == "rate_limited" else 1] += 1

    def forget(self, organization_id: int) -> None:
        """The organization's plan or limits changed: read them again at its next body."""
        self._limits.pop(organization_id, None)

    # -- what the usage endpoint adds ------------------------------------------------------

    def unflushed(self, organization_id: int) -> tuple[int, dict[int, dict[str, int]]]:
        """This process's counts of today not yet in the table: readings stored, and bodies
        refused by device (hold ``consistent`` while reading the table too)."""
        day = epoch_day()
        key = (organization_id, day)
        readings = self._counted.get(key, 0) + self._flushing.get(key, 0)
        by_device: dict[int, dict[str, int]] = {}
        for pending in (self._rejected, self._flushing_rejected):
            for (org, device_id, of_day), (rate, quota) in list(pending.items()):
                if org == organization_id and of_day == day:
                    counts = by_device.setdefault(device_id, {"rate_limited": 0,
                                                              "quota_exceeded": 0})
                    counts["rate_limited"] += rate
                    counts["quota_exceeded"] += quota
        return readings, by_device

    # -- the job ---------------------------------------------------------------------------

    async def flush(self) -> None:
        """Add this process's counts to the shared rows, and read today's totals of the
        organizations this process checks. Counts are put back if the database fails."""
        day = epoch_day()
        if day != self._day:
            self._new_day(day)
        async with self.consistent:
            self._flushing, self._counted = self._counted, Counter()
            self._flushing_rejected, self._rejected = self._rejected, {}
            try:
                rows = self._rows(self._flushing, self._flushing_rejected)
                if rows:
                    async with write_transaction(self.engine) as conn:
                        wanted = sorted({org for org, _, _ in rows})
                        alive = set((await conn.scalars(
                            select(organizations.c.id).where(organizations.c.id.in_(wanted)))))
                        for key in sorted(rows):  # one order: no deadlock between processes
                            if key[0] in alive:  # an organization deleted meanwhile: dropped
                                await conn.execute(
                                    self._upsert(conn.dialect.name, key, rows[key]))
            except BaseException:
                self._counted.update(self._flushing)
                for key, (rate, quota) in self._flushing_rejected.items():
                    counts = self._rejected.setdefault(key, [0, 0])
                    counts[0] += rate
                    counts[1] += quota
                self._flushing, self._flushing_rejected = Counter(), {}
                raise
            # In the table now: no longer unflushed, still counted by the quota until read.
            self._committed, self._flushing = self._flushing, Counter()
            self._flushing_rejected = {}
        if time.monotonic() - self._limits_since > LIMITS_SECONDS:
            self._limits_since = time.monotonic()
            self._limits = {}
        limited = [org for org, limit in self._limits.items() if limit is not None]
        try:
            if limited:
                async with self.engine.connect() as conn:
                    totals = dict((await conn.execute(
                        select(usage_counters.c.organization_id, usage_counters.c.readings)
                        .where(usage_counters.c.organization_id.in_(limited),
                               usage_counters.c.device_id == ORGANIZATION,
                               usage_counters.c.day == _date(day)))).all())
                self._shared = {org: totals.get(org, 0) for org in limited}
        except BaseException:
            # Flushed, not read back: what was flushed stays in the view until the next read.
            for (org, of_day), n in self._committed.items():
                if of_day == day:
                    self._shared[org] = self._shared.get(org, 0) + n
            raise
        finally:
            self._committed = Counter()

    @staticmethod
    def _rows(counted, rejected) -> dict[tuple[int, int, int], list[int]]:
        """(org, device or 0, day) -> [readings, rate_limited, quota_exceeded] to add."""
        rows: dict[tuple[int, int, int], list[int]] = {}
        for (org, day), n in counted.items():
            rows.setdefault((org, ORGANIZATION, day), [0, 0, 0])[0] += n
        for (org, device_id, day), (rate, quota) in rejected.items():
            for key in ((org, device_id, day), (org, ORGANIZATION, day)):
                row = rows.setdefault(key, [0, 0, 0])
                row[1] += rate
                row[2] += quota
        return rows

    @staticmethod
    def _upsert(dialect: str, key: tuple[int, int, int], counts: list[int]):
        organization_id, device_id, day = key
        readings, rate, quota = counts
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(usage_counters).values(
            organization_id=organization_id, device_id=device_id, day=_date(day),
            readings=readings, rate_limited=rate, quota_exceeded=quota)
        c = usage_counters.c
        return statement.on_conflict_do_update(
            index_elements=[c.organization_id, c.device_id, c.day],
            set_={"readings": c.readings + statement.excluded.readings,
                  "rate_limited": c.rate_limited + statement.excluded.rate_limited,
                  "quota_exceeded": c.quota_exceeded + statement.excluded.quota_exceeded})

    def _new_day(self, day: int) -> None:
        """Midnight UTC: every quota starts again (yesterday's counts still get flushed)."""
        self._day = day
        self._shared = {}

    async def _load(self, organization_id: int) -> int | None:
        """The organization's daily limit, and today's total in the table; cached."""
        async with self.engine.connect() as conn:
            org = (await conn.execute(select(organizations)
                                      .where(organizations.c.id == organization_id))
                   ).mappings().first()
            if org is None:  # deleted meanwhile: its devices are gone too
                return None
            limit = self.plans.of(org).readings_per_day
            if limit is not None:
                day = epoch_day()
                total = await conn.scalar(
                    select(usage_counters.c.readings)
                    .where(usage_counters.c.organization_id == organization_id,
                           usage_counters.c.device_id == ORGANIZATION,
                           usage_counters.c.day == _date(day)))
                if day == self._day:
                    self._shared[organization_id] = total or 0
        self._limits[organization_id] = limit
        return limit
