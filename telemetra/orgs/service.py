"""Organizations: created at first start (the default one) or by tenant sign-up."""

from datetime import timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.db.tables import (
    alert_rules,
    devices,
    organizations,
    readings,
    sensors,
    usage_counters,
)
from telemetra.kit.errors import Conflict, Invalid, NotFound
from telemetra.kit.events import record
from telemetra.kit.timeutil import utcnow
from telemetra.orgs.events import InvalidTagsChanged, PlanChanged
from telemetra.orgs.plans import plans_of
from telemetra.orgs.schemas import DEFAULT_INVALID_TAGS, OrganizationUpdate, PlanUpdate

# A reading row with its index entry, without tags or meta, on PostgreSQL.
APPROX_BYTES_PER_READING = 64


async def get_organization(conn: AsyncConnection, organization_id: int) -> RowMapping:
    row = (await conn.execute(
        select(organizations).where(organizations.c.id == organization_id))).mappings().first()
    if row is None:
        raise NotFound(f"organization {organization_id} not found")
    return row


async def invalid_tags(conn: AsyncConnection, organization_id: int) -> frozenset[str]:
    """Tags that make a reading invalid in this organization (the defaults if unset)."""
    stored = await conn.scalar(select(organizations.c.invalid_tags)
                               .where(organizations.c.id == organization_id))
    return frozenset(DEFAULT_INVALID_TAGS if stored is None else stored)


DEFAULT_RETENTION_DAYS = 365


async def create_organization(conn: AsyncConnection, name: str) -> int:
    """A new organization on the default plan (``TELEMETRA_DEFAULT_PLAN``), keeping readings
    365 days or the plan's most, whichever is less."""
    now = utcnow()
    plan = plans_of(conn).default
    retention = min(DEFAULT_RETENTION_DAYS, plan.retention_days or DEFAULT_RETENTION_DAYS)
    return await conn.scalar(
        insert(organizations)
        .values(name=name, invalid_tags=DEFAULT_INVALID_TAGS, plan=plan.name,
                retention_days=retention, created_at=now, updated_at=now)
        .returning(organizations.c.id))


async def unique_organization_name(conn: AsyncConnection, wanted: str) -> str:
    """``wanted``, or ``wanted-2``, ``wanted-3``... whichever is free."""
    taken = set((await conn.scalars(
        select(organizations.c.name)
        .where(organizations.c.name.startswith(wanted, autoescape=True)))).all())
    name, n = wanted, 1
    while name in taken:
        n += 1
        name = f"{wanted}-{n}"
    return name


async def ensure_organization(conn: AsyncConnection, name: str) -> int:
    """The id of the organization called ``name``, created if missing."""
    found = await conn.scalar(select(organizations.c.id).where(organizations.c.name == name))
    return found if found is not None else await create_organization(conn, name)


async def update_organization(conn: AsyncConnection, organization_id: int,
                              changes: OrganizationUpdate) -> RowMapping:
    values = changes.model_dump(exclude_unset=True)
    if "retention_days" in values:
        org = await get_organization(conn, organization_id)
        most = plans_of(conn).of(org).retention_days
        if most is not None and values["retention_days"] > most:
            raise Invalid(f"the {org['plan']} plan keeps readings at most {most} days",
                          loc=["body", "retention_days"])
    if "name" in values:
        clash = await conn.scalar(select(organizations.c.id).where(
            organizations.c.name == values["name"], organizations.c.id != organization_id))
        if clash is not None:
            raise Conflict(f"an organization named {values['name']!r} exists already")
    if values:
        await conn.execute(update(organizations).where(organizations.c.id == organization_id)
                           .values(**values, updated_at=utcnow()))
    if "invalid_tags" in values:
        record(conn, InvalidTagsChanged(organization_id))
    return await get_organization(conn, organization_id)


async def set_plan(conn: AsyncConnection, organization_id: int, body: PlanUpdate) -> RowMapping:
    """Put the organization on a plan (a 422 for one not in the table), with the limits of
    its own the body gives (``PUT``: limits left out are the plan's). A retention longer
    than the plan keeps is cut to it."""
    org = await get_organization(conn, organization_id)
    plan = plans_of(conn).named(body.plan)
    retention = org["retention_days"]
    if plan.retention_days is not None:
        retention = min(retention, plan.retention_days)
    await conn.execute(update(organizations).where(organizations.c.id == organization_id)
                       .values(plan=plan.name, max_devices=body.max_devices,
                               max_readings_per_day=body.max_readings_per_day,
                               retention_days=retention, updated_at=utcnow()))
    record(conn, PlanChanged(organization_id))
    return await get_organization(conn, organization_id)


async def usage(conn: AsyncConnection, organization_id: int,
                unflushed: tuple[int, dict[int, dict[str, int]]] = (0, {})) -> dict:
    """The organization's usage against its limits. Readings today and this month are those
    stored (duplicates left out) since midnight UTC and the first of the month, from the
    shared counters plus ``unflushed``: this process's readings and rejected bodies by device
    not yet added to them (``UsageMeter.unflushed``)."""
    org = await get_organization(conn, organization_id)
    limits = plans_of(conn).of(org)

    def count(table):
        return select(func.count()).select_from(table).where(
            table.c.organization_id == organization_id)

    now = utcnow()
    today = now.date()
    counters = (await conn.execute(
        select(usage_counters.c.device_id, usage_counters.c.day, usage_counters.c.readings,
               usage_counters.c.rate_limited, usage_counters.c.quota_exceeded)
        .where(usage_counters.c.organization_id == organization_id,
               usage_counters.c.day >= today.replace(day=1)))).all()
    local_readings, local_rejected = unflushed
    readings_today = readings_month = local_readings
    rejected: dict[int, dict[str, int]] = {
        device_id: dict(counts) for device_id, counts in local_rejected.items()}
    for row in counters:
        if row.device_id == 0:
            readings_month += row.readings
            if row.day == today:
                readings_today += row.readings
        elif row.day == today and (row.rate_limited or row.quota_exceeded):
            counts = rejected.setdefault(row.device_id, {"rate_limited": 0,
                                                         "quota_exceeded": 0})
            counts["rate_limited"] += row.rate_limited
            counts["quota_exceeded"] += row.quota_exceeded
    org_sensors = select(sensors.c.id).where(sensors.c.organization_id == organization_id)
    total = await conn.scalar(select(func.count()).select_from(readings)
                              .where(readings.c.sensor_id.in_(org_sensors)))
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    by_device = [{"device_id": device_id, **counts}
                 for device_id, counts in sorted(rejected.items())]
    return {"organization_id": organization_id, "plan": limits.plan,
            "devices": await conn.scalar(count(devices)), "max_devices": limits.devices,
            "alert_rules": await conn.scalar(count(alert_rules)),
            "max_alert_rules": limits.alert_rules,
            "sensors": await conn.scalar(count(sensors)),
            "readings_today": readings_today, "readings_this_month": readings_month,
            "readings_total": total, "max_readings_per_day": limits.readings_per_day,
            "readings_quota_resets_at": midnight,
            "retention_days": org["retention_days"], "max_retention_days": limits.retention_days,
            "storage_bytes": total * APPROX_BYTES_PER_READING,
            "rejected_today": {
                "rate_limited": sum(d["rate_limited"] for d in by_device),
                "quota_exceeded": sum(d["quota_exceeded"] for d in by_device),
                "by_device": by_device}}
