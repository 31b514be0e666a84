from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import Response

from telemetra.admin import service
from telemetra.admin.schemas import DeviceStatusChange, DeviceStatusCounts, PlatformStats
from telemetra.auth.dependencies import Superadmin
from telemetra.auth.schemas import User
from telemetra.devices.schemas import Device, DeviceStatus
from telemetra.kit.db import ConnDep, TransactionalRoute
from telemetra.kit.pagination import Page, PageDep
from telemetra.kit.schemas import page
from telemetra.orgs.schemas import Organization, PlanUpdate

router = APIRouter(prefix="/admin", tags=["admin"], route_class=TransactionalRoute)


@router.get("/stats", response_model=PlatformStats, summary="Platform totals")
async def get_stats(conn: ConnDep, admin: Superadmin):
    return await service.platform_stats(conn)


@router.get("/devices", response_model=Page[Device], summary="Devices of every organization")
async def list_all_devices(conn: ConnDep, admin: Superadmin, params: PageDep,
                           organization_id: int | None = None,
                           status: DeviceStatus | None = None,
                           q: Annotated[str | None, Query(max_length=200)] = None):
    items, total = await service.list_devices(conn, params, organization_id=organization_id,
                                              status=status, q=q)
    return page(items, total, params)


@router.get("/devices/statuses", response_model=DeviceStatusCounts,
            summary="Devices counted by status and online")
async def get_device_statuses(conn: ConnDep, admin: Superadmin):
    return await service.device_status_counts(conn)


@router.get("/devices/{device_id:int}", response_model=Device, summary="Any device")
async def get_any_device(device_id: int, conn: ConnDep, admin: Superadmin):
    return await service.get_device(conn, device_id)


@router.put("/devices/{device_id:int}/status", response_model=Device,
            summary="Set any device's status")
async def set_any_device_status(device_id: int, body: DeviceStatusChange, conn: ConnDep,
                                admin: Superadmin):
    return await service.set_device_status(conn, device_id, body.status)


@router.delete("/devices/{device_id:int}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete any device with its data")
async def delete_any_device(device_id: int, conn: ConnDep, admin: Superadmin):
    await service.delete_device(conn, device_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users", response_model=Page[User], summary="Users of every organization")
async def list_all_users(conn: ConnDep, admin: Superadmin, params: PageDep,
                         organization_id: int | None = None):
    items, total = await service.list_users(conn, params, organization_id=organization_id)
    return page(items, total, params)


@router.get("/organizations", response_model=Page[Organization], summary="All organizations")
async def list_organizations(conn: ConnDep, admin: Superadmin, params: PageDep):
    items, total = await service.list_organizations(conn, params)
    return page(items, total, params)


@router.put("/organizations/{organization_id}/plan", response_model=Organization,
            summary="Set an organization's plan and limits")
async def set_organization_plan(organization_id: int, body: PlanUpdate, conn: ConnDep,
                                admin: Superadmin):
    return await service.set_plan(conn, organization_id, body)
