from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import Response

from telemetra.auth.dependencies import CurrentUser, Member
from telemetra.kit.db import ConnDep, TransactionalRoute
from telemetra.kit.pagination import Page, PageDep
from telemetra.kit.schemas import page
from telemetra.sites import service
from telemetra.sites.schemas import Site, SiteCreate, SiteReplace, SiteStatistics, SiteUpdate

router = APIRouter(prefix="/sites", tags=["sites"], route_class=TransactionalRoute)


@router.get("", response_model=Page[Site], summary="List sites")
async def list_sites(conn: ConnDep, user: CurrentUser, params: PageDep,
                     q: Annotated[str | None, Query(max_length=200)] = None):
    items, total = await service.list_sites(conn, user.organization_id, params, q)
    return page(items, total, params)


@router.post("", response_model=Site, status_code=status.HTTP_201_CREATED,
             summary="Create a site (member)")
async def create_site(body: SiteCreate, conn: ConnDep, user: Member):
    return await service.create_site(conn, user.organization_id, body)


@router.get("/{site_id}", response_model=Site, summary="One site")
async def get_site(site_id: int, conn: ConnDep, user: CurrentUser):
    return await service.get_site(conn, user.organization_id, site_id)


@router.patch("/{site_id}", response_model=Site, summary="Update a site (member)")
async def update_site(site_id: int, body: SiteUpdate, conn: ConnDep, user: Member):
    return await service.update_site(conn, user.organization_id, site_id, body)


@router.put("/{site_id}", response_model=Site, summary="Replace a site (member)",
            description="Replaces the whole site: a field left out takes its default, as at "
                        "creation (`name` is required, the others are cleared); `PATCH` "
                        "changes only the fields sent.")
async def replace_site(site_id: int, body: SiteReplace, conn: ConnDep, user: Member):
    return await service.replace_site(conn, user.organization_id, site_id, body)


@router.delete("/{site_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a site (member)",
               description="Deletes the site **and its devices, their sensors and readings**. "
                           "The site is a 404 afterwards.")
async def delete_site(site_id: int, conn: ConnDep, user: Member):
    await service.delete_site(conn, user.organization_id, site_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{site_id}/statistics", response_model=SiteStatistics,
            summary="Devices, sensors by status and readings of a site")
async def get_site_statistics(site_id: int, conn: ConnDep, user: CurrentUser):
    return await service.site_statistics(conn, user.organization_id, site_id)
