from fastapi import APIRouter, status
from fastapi.responses import Response

from telemetra.auth.dependencies import CurrentUser, Member
from telemetra.groups import service
from telemetra.groups.schemas import (
    Group,
    GroupCreate,
    GroupReplace,
    GroupUpdate,
    GroupWithDevices,
)
from telemetra.kit.db import ConnDep, TransactionalRoute
from telemetra.kit.pagination import Page, PageDep
from telemetra.kit.schemas import page

router = APIRouter(prefix="/groups", tags=["groups"], route_class=TransactionalRoute)


@router.get("", response_model=Page[Group], summary="List device groups")
async def list_groups(conn: ConnDep, user: CurrentUser, params: PageDep):
    items, total = await service.list_groups(conn, user.organization_id, params)
    return page(items, total, params)


@router.post("", response_model=Group, status_code=status.HTTP_201_CREATED,
             summary="Create a group (member)")
async def create_group(body: GroupCreate, conn: ConnDep, user: Member):
    return await service.create_group(conn, user.organization_id, body)


@router.get("/{group_id}", response_model=GroupWithDevices, response_model_exclude_unset=True,
            summary="One group; `include_devices=true` adds its devices")
async def get_group(group_id: int, conn: ConnDep, user: CurrentUser,
                    include_devices: bool = False):
    return await service.get_group(conn, user.organization_id, group_id, include_devices)


@router.patch("/{group_id}", response_model=Group, summary="Update a group (member)")
async def update_group(group_id: int, body: GroupUpdate, conn: ConnDep, user: Member):
    return await service.update_group(conn, user.organization_id, group_id, body)


@router.put("/{group_id}", response_model=Group, summary="Replace a group (member)",
            description="Replaces the whole group: a field left out takes its default, as at "
                        "creation (`name` is required, the others are cleared); its devices "
                        "stay. `PATCH` changes only the fields sent.")
async def replace_group(group_id: int, body: GroupReplace, conn: ConnDep, user: Member):
    return await service.replace_group(conn, user.organization_id, group_id, body)


@router.delete("/{group_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a group (member); its devices stay")
async def delete_group(group_id: int, conn: ConnDep, user: Member):
    await service.delete_group(conn, user.organization_id, group_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{group_id}/devices/{device_id}", status_code=status.HTTP_204_NO_CONTENT,
             summary="Add a device to a group (member; idempotent)")
async def add_group_device(group_id: int, device_id: int, conn: ConnDep, user: Member):
    await service.add_member(conn, user.organization_id, group_id, device_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/{group_id}/devices/{device_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Remove a device from a group (member)")
async def remove_group_device(group_id: int, device_id: int, conn: ConnDep, user: Member):
    await service.remove_member(conn, user.organization_id, group_id, device_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
