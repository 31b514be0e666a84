from fastapi import APIRouter, Request, status
from fastapi.responses import Response

from telemetra.auth.dependencies import Admin, CurrentUser
from telemetra.connectors import service
from telemetra.connectors.schemas import (
    Connector,
    ConnectorCreate,
    ConnectorKind,
    ConnectorUpdate,
)
from telemetra.kit.db import ConnDep, TransactionalRoute
from telemetra.kit.pagination import Page, PageDep
from telemetra.kit.schemas import page

router = APIRouter(prefix="/connectors", tags=["connectors"], route_class=TransactionalRoute)

_KIND_RULES = ("`mqtt_topic` connectors subscribe to `topic`, an MQTT topic filter outside "
                "the platform's own topic prefix; `http_pull` connectors fetch `url` every "
                "`interval_seconds`. A field of the other kind is a 422.")


def _mqtt_prefix(request: Request) -> str:
    return request.app.state.settings.mqtt_prefix


@router.get("", response_model=Page[Connector], summary="List connectors")
async def list_connectors(conn: ConnDep, user: CurrentUser, params: PageDep,
                          kind: ConnectorKind | None = None, device_id: int | None = None,
                          enabled: bool | None = None):
    items, total = await service.list_connectors(conn, user.organization_id, params, kind=kind,
                                                 device_id=device_id, enabled=enabled)
    return page(items, total, params)


@router.post("", response_model=Connector, status_code=status.HTTP_201_CREATED,
             summary="Create a connector (admin)", description=_KIND_RULES)
async def create_connector(body: ConnectorCreate, conn: ConnDep, user: Admin,
                           request: Request):
    return await service.create_connector(conn, user.organization_id, body,
                                          mqtt_prefix=_mqtt_prefix(request))


@router.get("/{connector_id}", response_model=Connector, summary="One connector")
async def get_connector(connector_id: int, conn: ConnDep, user: CurrentUser):
    return await service.get_connector(conn, user.organization_id, connector_id)


@router.patch("/{connector_id}", response_model=Connector, summary="Update a connector (admin)",
              description="The changed connector is checked as a whole; changing `kind` drops "
                          "the old kind's fields. " + _KIND_RULES)
async def update_connector(connector_id: int, body: ConnectorUpdate, conn: ConnDep, user: Admin,
                           request: Request):
    return await service.update_connector(conn, user.organization_id, connector_id, body,
                                          mqtt_prefix=_mqtt_prefix(request))


@router.delete("/{connector_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a connector (admin); the readings it stored stay")
async def delete_connector(connector_id: int, conn: ConnDep, user: Admin):
    await service.delete_connector(conn, user.organization_id, connector_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
