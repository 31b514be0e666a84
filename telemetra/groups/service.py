"""Device groups and their membership."""

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.db.tables import devices, group_members, groups
from telemetra.devices.service import device_out, get_device
from telemetra.groups.events import GroupMembersChanged
from telemetra.groups.schemas import GroupCreate, GroupReplace, GroupUpdate
from telemetra.kit.events import record
from telemetra.kit.pagination import PageParams, paginate
from telemetra.kit.schemas import as_update
from telemetra.kit.scoping import ensure_name_free, get_scoped, scoped
from telemetra.kit.timeutil import utcnow

_device_count = (select(func.count()).where(group_members.c.group_id == groups.c.id)
                 .scalar_subquery().label("device_count"))


async def list_groups(conn: AsyncConnection, organization_id: int,
                      params: PageParams) -> tuple[list, int]:
    query = scoped(groups, organization_id).add_columns(_device_count).order_by(groups.c.id)
    return await paginate(conn, query, params)


async def get_group(conn: AsyncConnection, organization_id: int, group_id: int,
                    include_devices: bool = False) -> dict:
    await get_scoped(conn, groups, group_id, organization_id, "group")
    row = (await conn.execute(
        select(groups, _device_count).where(groups.c.id == group_id))).mappings().one()
    out = dict(row)
    if include_devices:
        members = (await conn.execute(
            select(devices).join(group_members, group_members.c.device_id == devices.c.id)
            .where(group_members.c.group_id == group_id).order_by(devices.c.id)
        )).mappings().all()
        out["devices"] = [device_out(member) for member in members]
    return out


async def create_group(conn: AsyncConnection, organization_id: int, body: GroupCreate) -> dict:
    await ensure_name_free(conn, groups, organization_id, body.name)
    now = utcnow()
    group_id = await conn.scalar(insert(groups).values(
        **body.model_dump(), organization_id=organization_id, created_at=now, updated_at=now,
    ).returning(groups.c.id))
    return await get_group(conn, organization_id, group_id)


async def update_group(conn: AsyncConnection, organization_id: int, group_id: int,
                       body: GroupUpdate) -> dict:
    await get_scoped(conn, groups, group_id, organization_id, "group")
    values = body.model_dump(exclude_unset=True)
    if "name" in values:
        await ensure_name_free(conn, groups, organization_id, values["name"],
                               exclude_id=group_id)
    if values:
        await conn.execute(update(groups).where(groups.c.id == group_id)
                           .values(**values, updated_at=utcnow()))
    return await get_group(conn, organization_id, group_id)


async def replace_group(conn: AsyncConnection, organization_id: int, group_id: int,
                        body: GroupReplace) -> dict:
    """PUT: the group as ``body`` has it, fields left out at their defaults."""
    return await update_group(conn, organization_id, group_id, as_update(body, GroupUpdate))


async def delete_group(conn: AsyncConnection, organization_id: int, group_id: int) -> None:
    """Delete a group; its devices stay."""
    await get_scoped(conn, groups, group_id, organization_id, "group")
    await conn.execute(delete(groups).where(groups.c.id == group_id))
    record(conn, GroupMembersChanged(organization_id, group_id))


async def add_member(conn: AsyncConnection, organization_id: int, group_id: int,
                     device_id: int) -> None:
    """Idempotent: adding a device that is a member already changes nothing."""
    await get_scoped(conn, groups, group_id, organization_id, "group")
    await get_device(conn, organization_id, device_id)
    exists = await conn.scalar(select(group_members.c.group_id).where(
        group_members.c.group_id == group_id, group_members.c.device_id == device_id))
    if exists is None:
        await conn.execute(insert(group_members).values(group_id=group_id, device_id=device_id,
                                                        created_at=utcnow()))
        record(conn, GroupMembersChanged(organization_id, group_id))


async def remove_member(conn: AsyncConnection, organization_id: int, group_id: int,
                        device_id: int) -> None:
    await get_scoped(conn, groups, group_id, organization_id, "group")
    await get_device(conn, organization_id, device_id)
    await conn.execute(delete(group_members).where(group_members.c.group_id == group_id,
                                                   group_members.c.device_id == device_id))
    record(conn, GroupMembersChanged(organization_id, group_id))
