"""Sites. Deleting a site deletes its devices, their sensors and readings (FK cascades)."""

from zoneinfo import available_timezones

from sqlalchemy import case, delete, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.db.tables import devices, readings, sensors, sites
from telemetra.devices.service import delete_devices
from telemetra.kit.errors import Invalid
from telemetra.kit.pagination import PageParams, paginate
from telemetra.kit.schemas import as_update
from telemetra.kit.scoping import ensure_name_free, get_scoped, scoped
from telemetra.kit.timeutil import utcnow
from telemetra.sites.schemas import SiteCreate, SiteReplace, SiteUpdate


def _check_timezone(values: dict) -> None:
    tz = values.get("timezone")
    if tz is not None and tz not in available_timezones():
        raise Invalid(f"timezone: {tz!r} is not an IANA time zone name", loc=["body", "timezone"])


async def list_sites(conn: AsyncConnection, organization_id: int, params: PageParams,
                     q: str | None = None) -> tuple[list, int]:
    query = scoped(sites, organization_id).order_by(sites.c.id)
    if q:
        query = query.where(func.lower(sites.c.name).contains(q.lower(), autoescape=True))
    return await paginate(conn, query, params)


async def get_site(conn: AsyncConnection, organization_id: int, site_id: int) -> RowMapping:
    return await get_scoped(conn, sites, site_id, organization_id, "site")


async def create_site(conn: AsyncConnection, organization_id: int, body: SiteCreate) -> RowMapping:
    values = body.model_dump()
    _check_timezone(values)
    await ensure_name_free(conn, sites, organization_id, body.name)
    now = utcnow()
    site_id = await conn.scalar(insert(sites).values(
        **values, organization_id=organization_id, created_at=now, updated_at=now,
    ).returning(sites.c.id))
    return await get_site(conn, organization_id, site_id)


async def update_site(conn: AsyncConnection, organization_id: int, site_id: int,
                      body: SiteUpdate) -> RowMapping:
    await get_site(conn, organization_id, site_id)
    values = body.model_dump(exclude_unset=True)
    _check_timezone(values)
    if values.get("name"):
        await ensure_name_free(conn, sites, organization_id, values["name"],
                               exclude_id=site_id)
    if values:
        await conn.execute(update(sites).where(sites.c.id == site_id)
                           .values(**values, updated_at=utcnow()))
    return await get_site(conn, organization_id, site_id)


async def replace_site(conn: AsyncConnection, organization_id: int, site_id: int,
                       body: SiteReplace) -> RowMapping:
    """PUT: the site as ``body`` has it, fields left out at their defaults."""
    return await update_site(conn, organization_id, site_id, as_update(body, SiteUpdate))


async def delete_site(conn: AsyncConnection, organization_id: int, site_id: int) -> None:
    """Delete the site with its devices (each recorded as deleted, so their keys, broker
    logins and cached sensors go with them once this commits)."""
    await get_site(conn, organization_id, site_id)
    # Locked first: no device can join the site between its devices' deletion and its own.
    await conn.execute(select(sites.c.id).where(sites.c.id == site_id).with_for_update())
    await delete_devices(conn, devices.c.site_id == site_id)
    await conn.execute(delete(sites).where(sites.c.id == site_id))


async def site_statistics(conn: AsyncConnection, organization_id: int, site_id: int) -> dict:
    site = await get_site(conn, organization_id, site_id)
    total_devices = await conn.scalar(
        select(func.count()).select_from(devices).where(devices.c.site_id == site_id))

    def by_status(status: str):
        return func.coalesce(func.sum(case((sensors.c.status == status, 1), else_=0)), 0)

    counts = (await conn.execute(
        select(func.count(sensors.c.id).label("total"), by_status("active").label("active"),
               by_status("inactive").label("inactive"),
               by_status("maintenance").label("maintenance"))
        .select_from(sensors.join(devices, devices.c.id == sensors.c.device_id))
        .where(devices.c.site_id == site_id)
    )).one()
    site_sensors = (select(sensors.c.id).join(devices, devices.c.id == sensors.c.device_id)
                    .where(devices.c.site_id == site_id))
    total_readings = await conn.scalar(
        select(func.count()).select_from(readings).where(readings.c.sensor_id.in_(site_sensors)))
    latest = await conn.scalar(select(func.max(sensors.c.last_ts))
                               .where(sensors.c.id.in_(site_sensors)))
    return {"site_id": site_id, "site_name": site["name"], "total_devices": total_devices,
            "total_sensors": counts.total, "active_sensors": counts.active,
            "inactive_sensors": counts.inactive, "maintenance_sensors": counts.maintenance,
            "total_readings": total_readings, "latest_reading_ts": latest}
