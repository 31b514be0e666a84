"""Devices: registration with a one-time key, status, heartbeats and logs. Never commits."""

from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.auth.principals import DEVICE_KEY_LOOKUP_CHARS, DEVICE_KEY_PREFIX, AuthDevice
from telemetra.connectors.events import ConnectorsChanged
from telemetra.db.tables import (
    connectors,
    device_logs,
    devices,
    group_members,
    sites,
)
from telemetra.devices.events import DeviceChanged, DeviceKeyIssued
from telemetra.devices.schemas import (
    DeviceCreate,
    DeviceReplace,
    DeviceStatus,
    DeviceUpdate,
    Heartbeat,
    LogCreate,
    LogLevel,
)
from telemetra.kit.errors import Invalid, NotFound
from telemetra.kit.events import record
from telemetra.kit.pagination import PageParams, paginate
from telemetra.kit.schemas import as_update, check_free_form
from telemetra.kit.scoping import ensure_scoped, get_scoped, scoped
from telemetra.kit.secrets import random_token, token_hash
from telemetra.kit.timeutil import utcnow
from telemetra.orgs.plans import enforce_count

DEVICE_COLUMNS = [c for c in devices.c if c.name != "api_key_hash"]


def device_out(row: RowMapping, now: datetime | None = None) -> dict:
    """A device row as the API shows it: no key hash, ``online`` worked out."""
    out = {c.name: row[c.name] for c in DEVICE_COLUMNS}
    until = row["online_until"]
    out["online"] = until is not None and until > (now or utcnow())
    return out


async def _new_key(conn: AsyncConnection) -> tuple[str, str, str]:
    """A fresh ``tdk_`` key, its lookup prefix (unique) and its hash."""
    while True:
        key = random_token(DEVICE_KEY_PREFIX)
        prefix = key[:DEVICE_KEY_LOOKUP_CHARS]
        taken = await conn.scalar(select(devices.c.id).where(devices.c.api_key_prefix == prefix))
        if taken is None:
            return key, prefix, token_hash(key)


async def get_device(conn: AsyncConnection, organization_id: int, device_id: int) -> RowMapping:
    return await get_scoped(conn, devices, device_id, organization_id, "device")


async def list_devices(conn: AsyncConnection, organization_id: int, params: PageParams, *,
                       site_id: int | None = None, group_id: int | None = None,
                       status: DeviceStatus | None = None, device_type: str | None = None,
                       q: str | None = None, online: bool | None = None) -> tuple[list, int]:
    query = scoped(devices, organization_id).order_by(devices.c.id)
    if site_id is not None:
        query = query.where(devices.c.site_id == site_id)
    if group_id is not None:
        query = query.where(devices.c.id.in_(
            select(group_members.c.device_id).where(group_members.c.group_id == group_id)))
    if status is not None:
        query = query.where(devices.c.status == status.value)
    if device_type is not None:
        query = query.where(devices.c.device_type == device_type)
    if q:
        query = query.where(func.lower(devices.c.name).contains(q.lower(), autoescape=True))
    now = utcnow()
    if online is True:
        query = query.where(devices.c.online_until > now)
    elif online is False:
        query = query.where((devices.c.online_until.is_(None)) | (devices.c.online_until <= now))
    rows, total = await paginate(conn, query, params)
    return [device_out(row, now) for row in rows], total


async def create_device(conn: AsyncConnection, organization_id: int, owner_id: int | None,
                        body: DeviceCreate) -> dict:
    """Register a device; the answer carries its key, which is never shown again."""
    await ensure_scoped(conn, sites, body.site_id, organization_id, "site_id")
    await enforce_count(conn, organization_id, "devices")  # 409 past the plan's
    key, prefix, key_hash = await _new_key(conn)
    now = utcnow()
    device_id = await conn.scalar(insert(devices).values(
        **body.model_dump(), organization_id=organization_id, owner_id=owner_id,
        api_key_prefix=prefix, api_key_hash=key_hash, created_at=now, updated_at=now,
    ).returning(devices.c.id))
    device = await get_device(conn, organization_id, device_id)
    _key_issued(conn, device, key)
    return {**device_out(device), "api_key": key}


def _key_issued(conn: AsyncConnection, device: RowMapping, key: str) -> None:
    record(conn, DeviceChanged(device["id"], device["organization_id"], device["status"]),
           DeviceKeyIssued(device["id"], device["organization_id"], key,
                           active=device["status"] != DeviceStatus.inactive.value))


def record_changed(conn: AsyncConnection, before: RowMapping, status: str | None = None) -> None:
    """Record that the device ``before`` (its row as it was) changed, to ``status`` if given."""
    now = status or before["status"]
    record(conn, DeviceChanged(before["id"], before["organization_id"], now,
                               status_changed=now != before["status"]))


async def update_device(conn: AsyncConnection, organization_id: int, device_id: int,
                        body: DeviceUpdate) -> dict:
    device = await get_device(conn, organization_id, device_id)
    values = body.model_dump(exclude_unset=True)
    if "site_id" in values:
        await ensure_scoped(conn, sites, values["site_id"], organization_id, "site_id")
    if "offline_after_seconds" in values and device["last_seen"] is not None:
        values["online_until"] = device["last_seen"] + timedelta(
            seconds=values["offline_after_seconds"])
    if values:
        await conn.execute(update(devices).where(devices.c.id == device_id)
                           .values(**values, updated_at=utcnow()))
        record_changed(conn, device, values.get("status"))
    return device_out(await get_device(conn, organization_id, device_id))


async def replace_device(conn: AsyncConnection, organization_id: int, device_id: int,
                         body: DeviceReplace) -> dict:
    """PUT: the device as ``body`` has it, fields left out at their defaults (so a device
    left without ``status`` is active again); recorded as changed like any update."""
    return await update_device(conn, organization_id, device_id, as_update(body, DeviceUpdate))


async def delete_device(conn: AsyncConnection, organization_id: int, device_id: int) -> None:
    """Delete a device with its sensors, readings, logs, commands and connectors (FK
    cascades)."""
    await get_device(conn, organization_id, device_id)
    await delete_devices(conn, devices.c.id == device_id)


async def delete_devices(conn: AsyncConnection, where) -> int:
    """Delete the devices matching ``where`` with everything that cascades from them,
    recording a ``DeviceChanged(deleted)`` for each (and ``ConnectorsChanged`` where
    connectors went with them); returns how many. The rows are locked first, so the events
    name exactly the devices deleted and no connector can be added to them meanwhile."""
    gone = (await conn.execute(
        select(devices.c.id, devices.c.organization_id, devices.c.status).where(where)
        .order_by(devices.c.id).with_for_update())).all()
    if not gone:
        return 0
    fed = (await conn.scalars(
        select(connectors.c.organization_id).distinct()
        .where(connectors.c.device_id.in_(select(devices.c.id).where(where))))).all()
    await conn.execute(delete(devices).where(where))
    record(conn, *(DeviceChanged(row.id, row.organization_id, row.status, deleted=True)
                   for row in gone),
           *(ConnectorsChanged(organization_id) for organization_id in sorted(fed)))
    return len(gone)


async def rotate_key(conn: AsyncConnection, organization_id: int, device_id: int) -> dict:
    """A new key for the device; the old one stops working once this commits."""
    await get_device(conn, organization_id, device_id)
    key, prefix, key_hash = await _new_key(conn)
    await conn.execute(update(devices).where(devices.c.id == device_id).values(
        api_key_prefix=prefix, api_key_hash=key_hash, updated_at=utcnow()))
    device = await get_device(conn, organization_id, device_id)
    _key_issued(conn, device, key)
    return {**device_out(device), "api_key": key}


def status_out(row: RowMapping) -> dict:
    out = device_out(row)
    return {"device_id": row["id"], "status": row["status"], "online": out["online"],
            "last_seen": row["last_seen"], "offline_after_seconds": row["offline_after_seconds"]}


async def device_for(conn: AsyncConnection, principal, device_id: int) -> RowMapping:
    """The device a caller may act on: a device key only for itself (others are 404)."""
    if isinstance(principal, AuthDevice) and principal.id != device_id:
        raise NotFound(f"device {device_id} not found")
    return await get_device(conn, principal.organization_id, device_id)


async def touch(conn: AsyncConnection, device: RowMapping, seen: datetime | None = None,
                **values) -> None:
    """Record contact from a device now: ``last_seen`` and ``online_until`` move on."""
    seen = seen or utcnow()
    await conn.execute(update(devices).where(devices.c.id == device["id"]).values(
        last_seen=seen, online_until=seen + timedelta(seconds=device["offline_after_seconds"]),
        **values))


async def heartbeat(conn: AsyncConnection, principal, device_id: int,
                    body: Heartbeat | None) -> dict:
    device = await device_for(conn, principal, device_id)
    values: dict = {}
    if body is not None:
        if body.status is not None:
            values["status"] = body.status.value
        if body.firmware_version is not None:
            values["firmware_version"] = body.firmware_version
        extra = {**(body.metadata or {}), **(body.model_extra or {})}
        if extra:
            values["metadata"] = merged = {**(device["metadata"] or {}), **extra}
            try:  # each part was bounded; their union must be too, to be read back
                check_free_form(merged)
            except ValueError as exc:
                raise Invalid(f"the device's metadata would be {exc}",
                              loc=["body", "metadata"]) from None
    if values:
        values["updated_at"] = utcnow()
    await touch(conn, device, **values)
    if values.get("status", device["status"]) != device["status"]:
        record_changed(conn, device, values["status"])
    return status_out(await get_device(conn, principal.organization_id, device_id))


async def add_logs(conn: AsyncConnection, principal, device_id: int,
                   entries: list[LogCreate]) -> int:
    device = await device_for(conn, principal, device_id)
    now = utcnow()
    if entries:
        await conn.execute(insert(device_logs), [
            {"organization_id": device["organization_id"], "device_id": device_id,
             "ts": entry.ts or now, "level": entry.level.value, "message": entry.message}
            for entry in entries])
    if isinstance(principal, AuthDevice):
        await touch(conn, device, now)
    return len(entries)


async def list_logs(conn: AsyncConnection, organization_id: int, device_id: int,
                    params: PageParams, *, level: LogLevel | None = None,
                    start: datetime | None = None, end: datetime | None = None) -> tuple[list, int]:
    await get_device(conn, organization_id, device_id)
    query = (scoped(device_logs, organization_id).where(device_logs.c.device_id == device_id)
             .order_by(device_logs.c.ts.desc(), device_logs.c.id.desc()))
    if level is not None:
        query = query.where(device_logs.c.level == level.value)
    if start is not None:
        query = query.where(device_logs.c.ts >= start)
    if end is not None:
        query = query.where(device_logs.c.ts <= end)
    return await paginate(conn, query, params)
