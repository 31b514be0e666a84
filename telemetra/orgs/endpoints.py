from fastapi import APIRouter, Request

from telemetra.auth.dependencies import CurrentUser, Owner
from telemetra.kit.db import ConnDep, TransactionalRoute
from telemetra.orgs import service
from telemetra.orgs.schemas import Organization, OrganizationUpdate, Usage

router = APIRouter(prefix="/organizations", tags=["organizations"], route_class=TransactionalRoute)


@router.get("/me", response_model=Organization, summary="The caller's organization")
async def get_my_organization(conn: ConnDep, user: CurrentUser):
    return await service.get_organization(conn, user.organization_id)


@router.patch("/me", response_model=Organization, summary="Update the organization (owner)")
async def update_my_organization(body: OrganizationUpdate, conn: ConnDep, user: Owner):
    return await service.update_organization(conn, user.organization_id, body)


@router.get("/me/usage", response_model=Usage, summary="Usage against the plan's limits")
async def get_my_usage(conn: ConnDep, user: CurrentUser, request: Request):
    meter = getattr(request.app.state, "usage", None)
    if meter is None:
        return await service.usage(conn, user.organization_id)
    # The table and this process's unflushed counts, together: under the meter's lock, and
    # on a fresh connection (the request's own may hold a SQLite snapshot from before a flush).
    async with meter.consistent, request.app.state.engine.connect() as fresh:
        return await service.usage(fresh, user.organization_id,
                                   meter.unflushed(user.organization_id))
