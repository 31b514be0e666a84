from typing import Annotated

from fastapi import APIRouter, Body, Query, status
from fastapi.responses import Response

from telemetra.auth.dependencies import CurrentUser, DeviceOrMember, Member
from telemetra.devices import service
from telemetra.devices.schemas import (
    Device,
    DeviceCreate,
    DeviceLog,
    DeviceReplace,
    DeviceStatus,
    DeviceStatusInfo,
    DeviceUpdate,
    DeviceWithKey,
    Heartbeat,
    LogCreate,
    LogLevel,
    LogsAccepted,
)
from telemetra.kit.db import ConnDep, TransactionalRoute
from telemetra.kit.pagination import Page, PageDep
from telemetra.kit.schemas import page
from telemetra.kit.timeparse import ACCEPTED, parse_query_time

router = APIRouter(prefix="/devices", tags=["devices"], route_class=TransactionalRoute)

TimeQuery = Annotated[str | None, Query(max_length=64, description=f"Time: {ACCEPTED}")]


@router.post("", response_model=DeviceWithKey, status_code=status.HTTP_201_CREATED,
             summary="Register a device (member)",
             description="The answer carries `api_key`, shown this once: only its hash is kept.")
async def create_device(body: DeviceCreate, conn: ConnDep, user: Member):
    return await service.create_device(conn, user.organization_id, user.id, body)


@router.get("", response_model=Page[Device], summary="List devices")
async def list_devices(conn: ConnDep, user: CurrentUser, params: PageDep,
                       site_id: int | None = None, group_id: int | None = None,
                       status: DeviceStatus | None = None,
                       device_type: Annotated[str | None, Query(max_length=100)] = None,
                       q: Annotated[str | None, Query(max_length=200)] = None,
                       online: bool | None = None):
    items, total = await service.list_devices(
        conn, user.organization_id, params, site_id=site_id, group_id=group_id, status=status,
        device_type=device_type, q=q, online=online)
    return page(items, total, params)


@router.get("/{device_id}", response_model=Device, summary="One device")
async def get_device(device_id: int, conn: ConnDep, user: CurrentUser):
    return service.device_out(await service.get_device(conn, user.organization_id, device_id))


@router.patch("/{device_id}", response_model=Device, summary="Update a device (member)")
async def update_device(device_id: int, body: DeviceUpdate, conn: ConnDep, user: Member):
    return await service.update_device(conn, user.organization_id, device_id, body)


@router.put("/{device_id}", response_model=Device, summary="Replace a device (member)",
            description="Replaces the whole device: a field left out takes its default, as "
                        "at creation (`name` is required; `status` active, "
                        "`offline_after_seconds` 300, the others cleared). Its key, sensors "
                        "and readings stay. `PATCH` changes only the fields sent.")
async def replace_device(device_id: int, body: DeviceReplace, conn: ConnDep, user: Member):
    return await service.replace_device(conn, user.organization_id, device_id, body)


@router.delete("/{device_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a device with its sensors, readings, logs and commands (member)")
async def delete_device(device_id: int, conn: ConnDep, user: Member):
    await service.delete_device(conn, user.organization_id, device_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{device_id}/rotate-key", response_model=DeviceWithKey,
             summary="Issue a new key (member); the old key stops working at once")
async def rotate_device_key(device_id: int, conn: ConnDep, user: Member):
    return await service.rotate_key(conn, user.organization_id, device_id)


@router.get("/{device_id}/status", response_model=DeviceStatusInfo,
            summary="Status, online and last_seen")
async def get_device_status(device_id: int, conn: ConnDep, user: CurrentUser):
    return service.status_out(await service.get_device(conn, user.organization_id, device_id))


@router.post("/{device_id}/heartbeat", response_model=DeviceStatusInfo,
             summary="Heartbeat (the device's key, or a member)",
             description="Updates `last_seen`; optional `status`, `firmware_version`, "
                         "`metadata`; other fields are merged into the metadata.")
async def device_heartbeat(device_id: int, conn: ConnDep, principal: DeviceOrMember,
                           body: Annotated[Heartbeat | None, Body()] = None):
    return await service.heartbeat(conn, principal, device_id, body)


@router.post("/{device_id}/logs", response_model=LogsAccepted,
             status_code=status.HTTP_201_CREATED,
             summary="Send log lines (the device's key, or a member): one or a list")
async def create_device_logs(
    device_id: int, conn: ConnDep, principal: DeviceOrMember,
    body: Annotated[LogCreate | Annotated[list[LogCreate], Body(max_length=1000)], Body()],
):
    entries = body if isinstance(body, list) else [body]
    return {"accepted": await service.add_logs(conn, principal, device_id, entries)}


@router.get("/{device_id}/logs", response_model=Page[DeviceLog],
            summary="Read a device's logs, newest first")
async def list_device_logs(device_id: int, conn: ConnDep, user: CurrentUser, params: PageDep,
                           level: LogLevel | None = None, start: TimeQuery = None,
                           end: TimeQuery = None):
    items, total = await service.list_logs(
        conn, user.organization_id, device_id, params, level=level,
        start=parse_query_time(start, name="start") if start else None,
        end=parse_query_time(end, name="end") if end else None)
    return page(items, total, params)
