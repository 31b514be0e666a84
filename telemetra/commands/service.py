"""Server-to-device commands: queue, hand out, record outcomes, cancel, expire. Never commits.

A command is ``queued`` until a device takes it (``delivered``), then ``succeeded`` or
``failed`` as the device reports; a user may cancel it before that (``cancelled``). Past its
``expires_at`` an open command is ``expired``: every read and write treats it so at once, and
``expire_due`` (a background job) records it, so the job's timing never shows.
"""

from datetime import datetime, timedelta

from sqlalchemy import Select, and_, case, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.auth.principals import AuthDevice
from telemetra.commands.events import CommandChanged, CommandQueued
from telemetra.commands.schemas import Command, CommandCreate, CommandOutcome, CommandStatus
from telemetra.db.tables import commands
from telemetra.devices.service import device_for, get_device, touch
from telemetra.kit.errors import Conflict, Invalid, NotFound
from telemetra.kit.events import record
from telemetra.kit.pagination import PageParams, paginate
from telemetra.kit.schemas import check_free_form
from telemetra.kit.timeutil import utcnow

OPEN = (CommandStatus.queued.value, CommandStatus.delivered.value)


def _unexpired(now: datetime):
    return or_(commands.c.expires_at.is_(None), commands.c.expires_at > now)


def _open(now: datetime):
    """Not finished: queued or delivered, and not past its expiry."""
    return and_(commands.c.status.in_(OPEN), _unexpired(now))


def _pending(device_id: int, now: datetime):
    """What a device has still to take: queued and not expired."""
    return and_(commands.c.device_id == device_id,
                commands.c.status == CommandStatus.queued.value, _unexpired(now))


def _effective(now: datetime) -> dict:
    """The columns that differ for an open command past ``expires_at``: it is expired, at that
    moment, even before ``expire_due`` has written so (and reads the same once it has)."""
    due = and_(commands.c.status.in_(OPEN), commands.c.expires_at <= now)
    return {"status": case((due, CommandStatus.expired.value), else_=commands.c.status),
            "completed_at": case((due, commands.c.expires_at), else_=commands.c.completed_at),
            "updated_at": case((due, commands.c.expires_at), else_=commands.c.updated_at)}


def _view(now: datetime) -> Select:
    effective = _effective(now)
    return select(*[effective[c.name].label(c.name) if c.name in effective else c
                    for c in commands.c])


def _oldest_first(query: Select) -> Select:
    return query.order_by(commands.c.created_at, commands.c.id)


async def _get(conn: AsyncConnection, organization_id: int, device_id: int, command_id: int,
               now: datetime) -> RowMapping:
    row = (await conn.execute(_view(now).where(
        commands.c.id == command_id, commands.c.organization_id == organization_id,
        commands.c.device_id == device_id))).mappings().first()
    if row is None:
        raise NotFound(f"command {command_id} not found")
    return row


def _ensure_open(command: RowMapping, doing: str) -> None:
    if command["status"] not in OPEN:
        raise Conflict(f"command {command['id']} is {command['status']} already; only a queued "
                       f"or delivered command can be {doing}")


async def _transition(conn: AsyncConnection, organization_id: int, command: RowMapping,
                      doing: str, now: datetime, **values) -> dict:
    """Apply ``values`` if the command is still open: a concurrent report or cancel may have
    finished it since it was read (PostgreSQL re-checks the condition on the locked row)."""
    changed = await conn.scalar(
        update(commands).where(commands.c.id == command["id"], _open(now))
        .values(**values, updated_at=now).returning(commands.c.id))
    current = await _get(conn, organization_id, command["device_id"], command["id"], now)
    if changed is None:
        _ensure_open(current, doing)  # finished meanwhile: 409 naming its status now
    _changed(conn, organization_id, current)
    return dict(current)


async def create_command(conn: AsyncConnection, organization_id: int, user_id: int,
                         device_id: int, body: CommandCreate) -> dict:
    """Queue a command for one of the organization's devices."""
    await get_device(conn, organization_id, device_id)
    now = utcnow()
    expires_at = now + timedelta(seconds=body.ttl_seconds) if body.ttl_seconds else None
    command_id = await conn.scalar(insert(commands).values(
        organization_id=organization_id, device_id=device_id, name=body.name,
        params=body.params or {}, status=CommandStatus.queued.value, created_by=user_id,
        expires_at=expires_at, created_at=now, updated_at=now,
    ).returning(commands.c.id))
    command = dict(await _get(conn, organization_id, device_id, command_id, now))
    record(conn, CommandQueued(command_id, device_id, organization_id, command_message(command)))
    _changed(conn, organization_id, command)
    return command


async def get_command(conn: AsyncConnection, principal, device_id: int,
                      command_id: int) -> dict:
    """One command of a device, for a user of its organization or for the device itself."""
    await device_for(conn, principal, device_id)
    return dict(await _get(conn, principal.organization_id, device_id, command_id, utcnow()))


async def list_commands(conn: AsyncConnection, organization_id: int, device_id: int,
                        params: PageParams, *,
                        status: CommandStatus | None = None) -> tuple[list, int]:
    """A device's command history, newest first."""
    await get_device(conn, organization_id, device_id)
    now = utcnow()
    query = (_view(now).where(commands.c.organization_id == organization_id,
                              commands.c.device_id == device_id)
             .order_by(commands.c.created_at.desc(), commands.c.id.desc()))
    if status is not None:
        query = query.where(_effective(now)["status"] == status.value)
    return await paginate(conn, query, params)


async def deliver_pending(conn: AsyncConnection, device: AuthDevice, device_id: int,
                          params: PageParams) -> tuple[list, int]:
    """A device's poll: one page of its pending commands, oldest first, which become
    ``delivered`` now; ``total`` counts every command that was pending. Also contact from the
    device."""
    if device.id != device_id:
        raise NotFound(f"device {device_id} not found")
    now = utcnow()
    # Claim by a conditional UPDATE, before any read of this transaction: two polls at once
    # never both get a command (PostgreSQL re-checks ``status`` on the locked row), and on
    # SQLite a transaction whose first statement writes waits for the write lock rather than
    # failing on a snapshot another writer has made stale.
    page_ids = (_oldest_first(select(commands.c.id).where(_pending(device_id, now)))
                .limit(params.limit).offset(params.offset))
    claimed = (await conn.execute(
        update(commands)
        .where(commands.c.id.in_(page_ids), commands.c.status == CommandStatus.queued.value)
        .values(status=CommandStatus.delivered.value, delivered_at=now, updated_at=now)
        .returning(*commands.c))).mappings().all()
    for row in claimed:
        _changed(conn, device.organization_id, row)
    left = await conn.scalar(select(func.count()).where(_pending(device_id, now)))
    await touch(conn, await get_device(conn, device.organization_id, device_id), now)
    items = sorted(claimed, key=lambda row: (row["created_at"], row["id"]))
    return items, len(items) + int(left or 0)


async def pending_for_device(conn: AsyncConnection, device_id: int,
                             now: datetime) -> list[RowMapping]:
    """A device's queued, unexpired commands, oldest first, left queued: to publish them
    again over MQTT when the device comes back online."""
    query = _oldest_first(select(commands).where(_pending(device_id, now)))
    return list((await conn.execute(query)).mappings().all())


async def record_result(conn: AsyncConnection, organization_id: int, device_id: int,
                        command_id: int, status: str, result) -> dict:
    """Record what a device reports on a command: ``delivered`` (taken; again is a no-op),
    ``succeeded`` or ``failed`` with an optional JSON ``result``. A finished command is a
    Conflict. Does not record contact from the device: the transport does that."""
    try:
        outcome = CommandOutcome(status)
    except ValueError:
        raise Invalid("status must be delivered, succeeded or failed",
                      loc=["body", "status"]) from None
    try:  # MQTT reports come here unvalidated
        check_free_form(result)
    except ValueError as exc:
        raise Invalid(f"result is {exc}", loc=["body", "result"]) from None
    await get_device(conn, organization_id, device_id)
    now = utcnow()
    command = await _get(conn, organization_id, device_id, command_id, now)
    _ensure_open(command, "reported on")
    if outcome is CommandOutcome.delivered and command["status"] == outcome.value:
        return dict(command)  # acknowledged again: nothing changes
    values: dict = {"status": outcome.value}
    if command["delivered_at"] is None:
        values["delivered_at"] = now
    if outcome is not CommandOutcome.delivered:
        values.update(result=result, completed_at=now)
    return await _transition(conn, organization_id, command, "reported on", now, **values)


async def report(conn: AsyncConnection, principal, device_id: int, command_id: int,
                 status: CommandOutcome, result) -> dict:
    """A report over HTTP: by the device itself (which counts as contact) or by a member."""
    device = await device_for(conn, principal, device_id)
    recorded = await record_result(conn, principal.organization_id, device_id, command_id,
                                   status.value, result)
    if isinstance(principal, AuthDevice):
        await touch(conn, device)
    return recorded


async def cancel_command(conn: AsyncConnection, organization_id: int, device_id: int,
                         command_id: int) -> dict:
    """Cancel a command that is not finished yet; a finished one is a Conflict."""
    await get_device(conn, organization_id, device_id)
    now = utcnow()
    command = await _get(conn, organization_id, device_id, command_id, now)
    _ensure_open(command, "cancelled")
    return await _transition(conn, organization_id, command, "cancelled", now,
                             status=CommandStatus.cancelled.value, completed_at=now)


async def expire_due(conn: AsyncConnection, now: datetime) -> int:
    """Record as ``expired`` every open command whose ``expires_at`` is not after ``now``, as
    of that moment (as reads showed it already); returns how many."""
    expired = (await conn.execute(
        update(commands)
        .where(commands.c.status.in_(OPEN), commands.c.expires_at <= now)
        .values(status=CommandStatus.expired.value, completed_at=commands.c.expires_at,
                updated_at=commands.c.expires_at)
        .returning(*commands.c))).mappings().all()
    for row in expired:
        _changed(conn, row["organization_id"], row)
    return len(expired)


def _changed(conn: AsyncConnection, organization_id: int, row) -> None:
    """Record that the command ``row`` (as it is now) was created or changed status."""
    public = Command.model_validate(dict(row)).model_dump(mode="json")
    record(conn, CommandChanged(row["id"], row["device_id"], organization_id, row["status"],
                                public))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def command_message(row) -> dict:
    """The MQTT payload of a command for its device (plain JSON types; ``device_id`` names the
    topic)."""
    return {"id": row["id"], "device_id": row["device_id"], "name": row["name"],
            "params": row["params"] or {}, "created_at": _iso(row["created_at"]),
            "expires_at": _iso(row["expires_at"])}
