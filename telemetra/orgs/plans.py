"""Plans: what an organization may have (API.md, "Plans"), and the count limits enforced.

The table is in settings: the built-in ``free``, ``pro`` and ``unlimited``, which
``TELEMETRA_PLANS`` (JSON) replaces or adds to by name. An organization names its plan; a
superadmin may give it its own ``max_devices`` and ``max_readings_per_day`` beside the plan's
(``PUT /admin/organizations/{id}/plan``), which win over the plan's. Each app registers its
table for its engine (``register``), so the services find it from their connection
(``plans_of``) without a settings argument threaded through every call.
"""

import logging
import weakref
from dataclasses import dataclass, fields
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from telemetra.db.tables import alert_rules, devices, organizations
from telemetra.kit.errors import Invalid, NotFound, PlanLimitReached

log = logging.getLogger("telemetra.plans")


@dataclass(frozen=True, slots=True)
class Plan:
    """One plan's limits; None is no limit."""

    name: str
    devices: int | None = None
    readings_per_day: int | None = None
    retention_days: int | None = None
    alert_rules: int | None = None


LIMIT_NAMES = tuple(f.name for f in fields(Plan) if f.name != "name")

BUILT_IN = {
    "free": Plan("free", devices=10, readings_per_day=100_000, retention_days=30,
                 alert_rules=10),
    "pro": Plan("pro", devices=1_000, readings_per_day=10_000_000, retention_days=365,
                alert_rules=500),
    "unlimited": Plan("unlimited"),
}


@dataclass(frozen=True, slots=True)
class Limits:
    """What one organization may have: its plan's limits, its own where a superadmin set
    them."""

    plan: str
    devices: int | None
    readings_per_day: int | None
    retention_days: int | None
    alert_rules: int | None


class Plans:
    """The plan table of one app."""

    def __init__(self, table: dict[str, Plan], default: str) -> None:
        if default not in table:
            raise ValueError(f"TELEMETRA_DEFAULT_PLAN {default!r} is not a plan; the plans are "
                             f"{', '.join(sorted(table))}")
        self.table = table
        self.default = table[default]
        self._unknown_logged: set[str] = set()

    @classmethod
    def from_settings(cls, settings) -> "Plans":
        """The built-in table with ``TELEMETRA_PLANS`` applied; a bad entry stops start-up."""
        table = dict(BUILT_IN)
        for name, given in settings.plans.items():
            unknown = sorted(set(given) - set(LIMIT_NAMES))
            if unknown:
                raise ValueError(f"TELEMETRA_PLANS: plan {name!r} names {', '.join(unknown)}; "
                                 f"a plan's limits are {', '.join(LIMIT_NAMES)}")
            if any(value is not None and value < 0 for value in given.values()):
                raise ValueError(f"TELEMETRA_PLANS: plan {name!r} has a negative limit")
            if given.get("retention_days") == 0:
                raise ValueError(f"TELEMETRA_PLANS: plan {name!r} keeps readings 0 days")
            table[name] = Plan(name, **given)
        return cls(table, settings.default_plan)

    def named(self, name: str) -> Plan:
        """The plan called ``name``; a 422 naming the plans there are otherwise."""
        plan = self.table.get(name)
        if plan is None:
            raise Invalid(f"unknown plan {name!r}; the plans are {', '.join(sorted(self.table))}",
                          loc=["body", "plan"])
        return plan

    def of(self, organization: RowMapping) -> Limits:
        """The limits of an organization (its row): its own overrides, else its plan's. A plan
        no longer in the table (TELEMETRA_PLANS changed) limits nothing, and is logged."""
        plan = self.table.get(organization["plan"])
        if plan is None:
            if organization["plan"] not in self._unknown_logged:
                self._unknown_logged.add(organization["plan"])
                log.warning("organizations on plan %r, which is not in the plan table, are not "
                            "limited", organization["plan"])
            plan = Plan(organization["plan"])
        devices_limit = organization["max_devices"]
        readings_limit = organization["max_readings_per_day"]
        return Limits(plan.name,
                      plan.devices if devices_limit is None else devices_limit,
                      plan.readings_per_day if readings_limit is None else readings_limit,
                      plan.retention_days, plan.alert_rules)


DEFAULT_PLANS = Plans(BUILT_IN, "unlimited")
_BY_ENGINE: "weakref.WeakKeyDictionary[object, Plans]" = weakref.WeakKeyDictionary()


def register(engine: AsyncEngine, plans: Plans) -> None:
    """Make ``plans`` the table of every connection of ``engine`` (done in the lifespan)."""
    _BY_ENGINE[engine.sync_engine] = plans


def plans_of(conn: AsyncConnection) -> Plans:
    """The plan table of the app this connection is of (the built-in one if none was
    registered: the command line, tests of a service alone)."""
    return _BY_ENGINE.get(conn.engine.sync_engine, DEFAULT_PLANS)


async def limits_of(conn: AsyncConnection, organization_id: int, *,
                    lock: bool = False) -> Limits:
    """The organization's limits. ``lock``: its row stays locked until the transaction ends
    (PostgreSQL; SQLite's writers hold the database's write lock from BEGIN), so two
    concurrent creations cannot both see room for one more."""
    query = select(organizations).where(organizations.c.id == organization_id)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise NotFound(f"organization {organization_id} not found")
    return plans_of(conn).of(row)


_COUNTED = {"devices": (devices, "devices", "max_devices"),
            "alert_rules": (alert_rules, "alert rules", "max_alert_rules")}


async def enforce_count(conn: AsyncConnection, organization_id: int,
                        kind: Literal["devices", "alert_rules"]) -> None:
    """Refuse (409 ``quota_exceeded``, naming the limit) one more of ``kind`` past the plan's
    count. Call it in the unit of work that creates it, before the insert: the organization's
    row is locked meanwhile, so concurrent creations at the edge pass one at a time."""
    limits = await limits_of(conn, organization_id)
    limit = getattr(limits, kind)
    if limit is None:
        return
    await limits_of(conn, organization_id, lock=True)
    table, label, name = _COUNTED[kind]
    count = await conn.scalar(select(func.count()).select_from(table)
                              .where(table.c.organization_id == organization_id))
    if count >= limit:
        raise PlanLimitReached(f"the {limits.plan} plan allows {limit} {label} ({name}); "
                               f"this organization has {count}: remove one or change plan",
                               limit=name, limit_value=limit, plan=limits.plan)
