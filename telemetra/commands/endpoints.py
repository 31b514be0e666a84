"""Commands from the platform to a device: members send and cancel them, the device polls for
them and reports the outcome (or receives them over MQTT)."""

from typing import Annotated

from fastapi import APIRouter, Query, status

from telemetra.auth.dependencies import AuthDevice, DeviceOrMember, Member, Principal
from telemetra.commands import service
from telemetra.commands.schemas import Command, CommandCreate, CommandReport, CommandStatus
from telemetra.kit.db import ConnDep, TransactionalRoute, writes
from telemetra.kit.pagination import Page, PageDep
from telemetra.kit.schemas import page

router = APIRouter(prefix="/devices", tags=["commands"], route_class=TransactionalRoute)


@router.post("/{device_id}/commands", response_model=Command,
             status_code=status.HTTP_201_CREATED, summary="Send a command to a device (member)",
             description="Queues the command (`queued`) and, when MQTT is on, publishes it on the "
                         "device's topic `<prefix>/devices/{device_id}/commands` once stored. "
                         "With `ttl_seconds` it expires that long after creation unless it is "
                         "finished by then.")
async def create_command(device_id: int, body: CommandCreate, conn: ConnDep, user: Member):
    return await service.create_command(conn, user.organization_id, user.id, device_id, body)


@router.get("/{device_id}/commands", response_model=Page[Command],
            summary="Poll for commands (the device) or read their history (users)",
            description="With the device's key: its pending commands (`queued`, not expired), "
                        "oldest first, which become `delivered` by this call; `total` counts "
                        "all that were pending, so more than `items` means poll again. The "
                        "poll counts as contact from the device.\n\n"
                        "With a user's token: every command of the device, newest first, "
                        "optionally only those with one `status`.")
@writes
async def list_commands(device_id: int, conn: ConnDep, principal: Principal,
                        params: PageDep,
                        status: Annotated[CommandStatus | None, Query(
                            description="Only commands with this status (a user's history; "
                                        "a device's poll ignores it)")] = None):
    if isinstance(principal, AuthDevice):
        items, total = await service.deliver_pending(conn, principal, device_id, params)
    else:
        items, total = await service.list_commands(conn, principal.organization_id, device_id,
                                                   params, status=status)
    return page(items, total, params)


@router.get("/{device_id}/commands/{command_id}", response_model=Command,
            summary="One command (users, or the device itself)",
            description="Reading a command does not change its status.")
async def get_command(device_id: int, command_id: int, conn: ConnDep, principal: Principal):
    return await service.get_command(conn, principal, device_id, command_id)


@router.patch("/{device_id}/commands/{command_id}", response_model=Command,
              summary="Report on a command (the device, or a member on its behalf)",
              description="`delivered` acknowledges receipt (again is a no-op); `succeeded` or "
                          "`failed` finishes the command, with an optional JSON `result`. A "
                          "finished command (succeeded, failed, expired, cancelled) is a 409. "
                          "A report from the device counts as contact.")
async def report_command(device_id: int, command_id: int, body: CommandReport, conn: ConnDep,
                         principal: DeviceOrMember):
    return await service.report(conn, principal, device_id, command_id, body.status,
                                body.result)


@router.delete("/{device_id}/commands/{command_id}", response_model=Command,
               summary="Cancel a command (member)",
               description="A `queued` or `delivered` command becomes `cancelled`; a finished "
                           "one is a 409. The answer is the cancelled command.")
async def cancel_command(device_id: int, command_id: int, conn: ConnDep, user: Member):
    return await service.cancel_command(conn, user.organization_id, device_id, command_id)
