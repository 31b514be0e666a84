"""Organizations: created at first start (the default one) or by tenant sign-up."""

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.db.tables import devices, organizations, readings, sensors
from telemetra.kit.errors import Conflict, NotFound
from telemetra.kit.events import record
from telemetra.kit.timeutil import utcnow
from telemetra.orgs.events import InvalidTagsChanged
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


async def create_organization(conn: AsyncConnection, name: str) -> int:
    now = utcnow()
    return await conn.scalar(
        insert(organizations)
        .values(name=name, invalid_tags=DEFAULT_INVALID_TAGS, created_at=now, updated_at=now)
        .returning(organizations.c.id))


async def unique_organization_name(conn: AsyncConnection, wanted: str) -> str:
    """``wanted``, or ``wanted-2``, ``wanted-3``... whichever is free."""
    taken = set((await conn.scalars(
        select(organizations.c.name).where(organizations.c.name.startswith(wanted, autoescape=True)))).all())
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
                              changes: OrganizationUpdate | PlanUpdate) -> RowMapping:
    values = changes.model_dump(exclude_unset=True)
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


async def usage(conn: AsyncConnection, organization_id: int) -> dict:
    org = await get_organization(conn, organization_id)
    def count(table):
        return select(func.count()).select_from(table).where(
            table.c.organization_id == organization_id)

    device_count = await conn.scalar(count(devices))
    sensor_count = await conn.scalar(count(sensors))
    now = utcnow()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    org_sensors = select(sensors.c.id).where(sensors.c.organization_id == organization_id)

    async def count_since(start=None) -> int:
        query = select(func.count()).select_from(readings).where(
            readings.c.sensor_id.in_(org_sensors))
        if start is not None:
            query = query.where(readings.c.ts >= start)
        return await conn.scalar(query)

    total = await count_since()
    return {"organization_id": organization_id, "plan": org["plan"], "devices": device_count,
            "max_devices": org["max_devices"], "sensors": sensor_count,
            "readings_today": await count_since(day),
            "readings_this_month": await count_since(day.replace(day=1)),
            "readings_total": total, "max_readings_per_day": org["max_readings_per_day"],
            "storage_bytes": total * APPROX_BYTES_PER_READING}
