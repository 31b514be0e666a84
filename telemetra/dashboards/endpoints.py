"""Dashboards: the organization's shared dashboards, and each user's own default one."""

from fastapi import APIRouter, status
from fastapi.responses import Response

from telemetra.auth.dependencies import CurrentUser, Member
from telemetra.dashboards import service
from telemetra.dashboards.schemas import (
    Dashboard,
    DashboardCreate,
    DashboardReplace,
    DashboardUpdate,
    DefaultDashboard,
    DefaultDashboardReplace,
)
from telemetra.kit.db import ConnDep, TransactionalRoute
from telemetra.kit.pagination import Page, PageDep
from telemetra.kit.schemas import page

router = APIRouter(prefix="/dashboards", tags=["dashboards"], route_class=TransactionalRoute)

_LAYOUT = ("A layout is `{tiles: [{id, title, sensorType or key, device_id?, site_id?, chart? "
           "(line, area, bar, gauge, stat, table), range? (e.g. `-24h`), interval? (e.g. `1h`), "
           "fn? (e.g. `avg`), layout: {i?, x, y, w, h}}]}`; one that is not is a 422 naming "
           "the tile and the field, and so is a `device_id` or `site_id` that is not the "
           "organization's.")


# {dashboard_id:int}: "default" is not an id, so PATCH /dashboards/default is a 405.
@router.get("/default", response_model=DefaultDashboard,
            summary="The caller's own default dashboard",
            description="Every user (viewers too) has one, private to them: it is not among "
                        "`GET /dashboards`. Before the first `PUT`, this answers **200 with an "
                        "empty dashboard** (`id`, `created_at` and `updated_at` null, no tiles) "
                        "rather than a 404: having no saved layout yet is the normal first "
                        "visit, not an error, so a client renders an empty grid and saves with "
                        "`PUT`; nothing is stored by reading.")
async def get_default_dashboard(conn: ConnDep, user: CurrentUser):
    return await service.get_default(conn, user)


@router.put("/default", response_model=DefaultDashboard,
            summary="Save the caller's own default dashboard",
            description="Replaces it whole (stores it on the first call). " + _LAYOUT)
async def replace_default_dashboard(body: DefaultDashboardReplace, conn: ConnDep,
                                    user: CurrentUser):
    return await service.replace_default(conn, user, body)


@router.get("", response_model=Page[Dashboard], summary="List the organization's dashboards")
async def list_dashboards(conn: ConnDep, user: CurrentUser, params: PageDep):
    items, total = await service.list_dashboards(conn, user.organization_id, params)
    return page(items, total, params)


@router.post("", response_model=Dashboard, status_code=status.HTTP_201_CREATED,
             summary="Create a dashboard (member)", description=_LAYOUT)
async def create_dashboard(body: DashboardCreate, conn: ConnDep, user: Member):
    return await service.create_dashboard(conn, user.organization_id, body)


@router.get("/{dashboard_id:int}", response_model=Dashboard, summary="One dashboard")
async def get_dashboard(dashboard_id: int, conn: ConnDep, user: CurrentUser):
    return await service.get_dashboard(conn, user.organization_id, dashboard_id)


@router.patch("/{dashboard_id:int}", response_model=Dashboard,
              summary="Update a dashboard (member)",
              description="Changes only the fields sent; a `layout` sent replaces the whole "
                          "layout. " + _LAYOUT)
async def update_dashboard(dashboard_id: int, body: DashboardUpdate, conn: ConnDep,
                           user: Member):
    return await service.update_dashboard(conn, user.organization_id, dashboard_id, body)


@router.put("/{dashboard_id:int}", response_model=Dashboard, summary="Replace a dashboard (member)",
            description="Replaces the whole dashboard: a field left out takes its default, as "
                        "at creation (`name` is required, no description, no tiles). " + _LAYOUT)
async def replace_dashboard(dashboard_id: int, body: DashboardReplace, conn: ConnDep,
                            user: Member):
    return await service.replace_dashboard(conn, user.organization_id, dashboard_id, body)


@router.delete("/{dashboard_id:int}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a dashboard (member)")
async def delete_dashboard(dashboard_id: int, conn: ConnDep, user: Member):
    await service.delete_dashboard(conn, user.organization_id, dashboard_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
