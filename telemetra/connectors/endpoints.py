from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import Response

from telemetra.auth.dependencies import Admin, AuthDevice, AuthUser, CurrentUser, IngestPrincipal
from telemetra.auth.roles import Role
from telemetra.connectors import service
from telemetra.connectors.schemas import (
    Connector,
    ConnectorCreate,
    ConnectorKind,
    ConnectorUpdate,
    RunResult,
)
from telemetra.kit.db import ConnDep, TransactionalRoute
from telemetra.kit.errors import Forbidden
from telemetra.kit.pagination import Page, PageDep
from telemetra.kit.schemas import page

router = APIRouter(prefix="/connectors", tags=["connectors"], route_class=TransactionalRoute)

_KIND_RULES = ("`mqtt_topic` connectors subscribe to `topic`, an MQTT topic filter outside "
                "the platform's own topic prefix; `http_pull` connectors fetch `url` every "
                "`interval_seconds`. A field of the other kind is a 422.")


def _checks(request: Request) -> dict:
    """What creating or changing a connector needs from the app: the MQTT topic space that
    is off limits, the box sealing headers, the hosts an operator allows."""
    state = request.app.state
    return {"mqtt_prefix": state.settings.mqtt_prefix, "box": state.connector_box,
            "allowed_hosts": state.settings.connector_allowed_hosts}


async def admin_outside_transaction(principal: IngestPrincipal) -> AuthUser:
    """An admin, looked up on a short connection of its own: a pull must not hold a request
    transaction (on SQLite, the write lock) while it waits for the upstream."""
    if isinstance(principal, AuthDevice):
        raise Forbidden("this endpoint needs a user's access token, not a device key")
    if not principal.role.at_least(Role.admin):
        raise Forbidden(f"this needs the {Role.admin.value} role or higher")
    return principal


AdminOutsideTransaction = Annotated[AuthUser, Depends(admin_outside_transaction)]


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
    return await service.create_connector(conn, user.organization_id, body, **_checks(request))


@router.get("/{connector_id}", response_model=Connector, summary="One connector")
async def get_connector(connector_id: int, conn: ConnDep, user: CurrentUser):
    return await service.get_connector(conn, user.organization_id, connector_id)


@router.patch("/{connector_id}", response_model=Connector, summary="Update a connector (admin)",
              description="The changed connector is checked as a whole; changing `kind` drops "
                          "the old kind's fields. " + _KIND_RULES)
async def update_connector(connector_id: int, body: ConnectorUpdate, conn: ConnDep, user: Admin,
                           request: Request):
    return await service.update_connector(conn, user.organization_id, connector_id, body,
                                          **_checks(request))


@router.delete("/{connector_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a connector (admin); the readings it stored stay")
async def delete_connector(connector_id: int, conn: ConnDep, user: Admin):
    await service.delete_connector(conn, user.organization_id, connector_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{connector_id}/run", response_model=RunResult,
             summary="Pull an http_pull connector now (admin)",
             description="Fetches the connector's `url` and stores what it answers, as a "
                         "scheduled pull does. An upstream that cannot be reached, does not "
                         "answer within `timeout_seconds`, answers anything but a 2xx, or "
                         "answers something that is not JSON or not an ingestion body is a "
                         "502 `upstream_error` naming the error: nothing is stored, and the "
                         "connector's `last_error` says it. A 409 while a scheduled pull of it "
                         "is still running, or when its device is inactive; a 422 for an "
                         "`mqtt_topic` connector.",
             responses={409: {"description": "A pull of it is running, or its device is "
                                             "inactive"},
                        502: {"description": "The upstream failed; nothing was stored"}})
async def run_connector(connector_id: int, user: AdminOutsideTransaction, request: Request):
    return await request.app.state.puller.run(user.organization_id, connector_id)
