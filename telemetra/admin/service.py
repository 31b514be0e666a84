"""Cross-organization views and actions for superadmins. The only unscoped queries."""

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.db.tables import devices, groups, organizations, sensors, sites, users
from telemetra.devices.schemas import DeviceStatus
from telemetra.devices.service import delete_devices, device_out, record_changed
from telemetra.kit.errors import NotFound
from telemetra.kit.pagination import PageParams, paginate
from telemetra.kit.timeutil import utcnow
from telemetra.orgs.schemas import PlanUpdate
from telemetra.orgs.service import set_plan as orgs_set_plan
from telemetra.users.service import USER_COLUMNS


async def _count(conn: AsyncConnection, table, *where) -> int:
    return await conn.scalar(select(func.count()).select_from(table).where(*where))


async def platform_stats(conn: AsyncConnection) -> dict:
    return {
        "organizations": await _count(conn, organizations),
        "users": await _count(conn, users),
        "active_users": await _count(conn, users, users.c.is_active.is_(True)),
        "devices": await _count(conn, devices),
        "online_devices": await _count(conn, devices, devices.c.online_until > utcnow()),
        "sensors": await _count(conn, sensors),
        "sites": await _count(conn, sites),
        "groups": await _count(conn, groups),
        "readings": 0,  # counted once the readings feature lands
    }


async def list_devices(conn: AsyncConnection, params: PageParams, *,
                       organization_id: int | None = None, status: DeviceStatus | None = None,
                       q: str | None = None) -> tuple[list, int]:
    query = select(devices).order_by(devices.c.id)
    if organization_id is not None:
        query = query.where(devices.c.organization_id == organization_id)
    if status is not None:
        query = query.where(devices.c.status == status.value)
    if q:
        query = query.where(func.lower(devices.c.name).contains(q.lower(), autoescape=True))
    rows, total = await paginate(conn, query, params)
    now = utcnow()
    return [device_out(row, now) for row in rows], total


async def get_device(conn: AsyncConnection, device_id: int) -> dict:
    row = (await conn.execute(select(devices).where(devices.c.id == device_id))).mappings().first()
    if row is None:
        raise NotFound(f"device {device_id} not found")
    return device_out(row)


async def set_device_status(conn: AsyncConnection, device_id: int, status: DeviceStatus) -> dict:
    before = (await conn.execute(select(devices).where(devices.c.id == device_id))
              ).mappings().first()
    if before is None:
        raise NotFound(f"device {device_id} not found")
    await conn.execute(update(devices).where(devices.c.id == device_id)
                       .values(status=status.value, updated_at=utcnow()))
    record_changed(conn, before, status.value)
    return await get_device(conn, device_id)


async def delete_device(conn: AsyncConnection, device_id: int) -> None:
    await get_device(conn, device_id)
    await delete_devices(conn, devices.c.id == device_id)


async def device_status_counts(conn: AsyncConnection) -> dict:
    rows = (await conn.execute(
        select(devices.c.status, func.count()).group_by(devices.c.status))).all()
    counts = {status.value: 0 for status in DeviceStatus}
    counts.update({status: n for status, n in rows})
    total = sum(counts.values())
    online = await _count(conn, devices, devices.c.online_until > utcnow())
    return {**counts, "online": online, "offline": total - online, "total": total}


async def list_users(conn: AsyncConnection, params: PageParams, *,
                     organization_id: int | None = None) -> tuple[list, int]:
    query = select(*USER_COLUMNS).order_by(users.c.id)
    if organization_id is not None:
        query = query.where(users.c.organization_id == organization_id)
    return await paginate(conn, query, params)


async def list_organizations(conn: AsyncConnection, params: PageParams) -> tuple[list, int]:
    return await paginate(conn, select(organizations).order_by(organizations.c.id), params)


async def set_plan(conn: AsyncConnection, organization_id: int, body: PlanUpdate):
    return await orgs_set_plan(conn, organization_id, body)
