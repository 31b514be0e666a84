from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import Response

from telemetra.auth.dependencies import CurrentUser, Member
from telemetra.kit.db import ConnDep, TransactionalRoute
from telemetra.kit.pagination import Page, PageDep
from telemetra.kit.schemas import page
from telemetra.sensors import service
from telemetra.sensors.schemas import (
    Sensor,
    SensorCreate,
    SensorReplace,
    SensorStatus,
    SensorUpdate,
)

router = APIRouter(prefix="/sensors", tags=["sensors"], route_class=TransactionalRoute)


@router.get("", response_model=Page[Sensor], summary="List sensors")
async def list_sensors(conn: ConnDep, user: CurrentUser, params: PageDep,
                       device_id: int | None = None, site_id: int | None = None,
                       type: Annotated[str | None, Query(max_length=50)] = None,
                       status: SensorStatus | None = None,
                       key: Annotated[str | None, Query(max_length=100)] = None):
    items, total = await service.list_sensors(conn, user.organization_id, params,
                                              device_id=device_id, site_id=site_id, type=type,
                                              status=status, key=key)
    return page(items, total, params)


@router.post("", response_model=Sensor, status_code=status.HTTP_201_CREATED,
             summary="Create a sensor (member); 409 if the device has that key already",
             responses={403: {"description": "The device has the most sensors it may have "
                                             "(TELEMETRA_MAX_SENSORS_PER_DEVICE)"}})
async def create_sensor(body: SensorCreate, conn: ConnDep, user: Member, request: Request):
    return await service.create_sensor(conn, user.organization_id, body,
                                       request.app.state.ingestor.sensor_caps)


@router.get("/{sensor_id}", response_model=Sensor, summary="One sensor")
async def get_sensor(sensor_id: int, conn: ConnDep, user: CurrentUser):
    return await service.get_sensor(conn, user.organization_id, sensor_id)


@router.patch("/{sensor_id}", response_model=Sensor, summary="Update a sensor (member)")
async def update_sensor(sensor_id: int, body: SensorUpdate, conn: ConnDep, user: Member):
    return await service.update_sensor(conn, user.organization_id, sensor_id, body)


@router.put("/{sensor_id}", response_model=Sensor, summary="Replace a sensor (member)",
            description="Replaces the whole sensor: a field left out takes its default, as at "
                        "creation (`type` other, `status` active, the others cleared). "
                        "`device_id` and `key` are required and must be the sensor's own: "
                        "they cannot change. Its readings stay. `PATCH` changes only the "
                        "fields sent.")
async def replace_sensor(sensor_id: int, body: SensorReplace, conn: ConnDep, user: Member):
    return await service.replace_sensor(conn, user.organization_id, sensor_id, body)


@router.delete("/{sensor_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a sensor and its readings (member)")
async def delete_sensor(sensor_id: int, conn: ConnDep, user: Member):
    await service.delete_sensor(conn, user.organization_id, sensor_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
