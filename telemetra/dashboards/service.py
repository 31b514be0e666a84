"""Dashboards: the organization's shared ones (rows without a user) and each user's own
default dashboard (the row with their ``user_id``, at most one, reached only through
``/dashboards/default``)."""

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.auth.principals import AuthUser
from telemetra.dashboards.schemas import (
    DEFAULT_NAME,
    EMPTY_LAYOUT,
    DashboardCreate,
    DashboardReplace,
    DashboardUpdate,
    DefaultDashboardReplace,
    Layout,
)
from telemetra.db.tables import dashboards, devices, sites
from telemetra.kit.errors import Invalid, NotFound
from telemetra.kit.pagination import PageParams, paginate
from telemetra.kit.scoping import scoped
from telemetra.kit.timeutil import utcnow

_shared = dashboards.c.user_id.is_(None)


def _stored(layout: Layout) -> dict:
    """The layout as stored and answered: API names (``sensorType``), unset fields left out."""
    return layout.model_dump(by_alias=True, exclude_none=True, mode="json")


async def _check_references(conn: AsyncConnection, organization_id: int,
                            layout: Layout) -> None:
    """Every tile's device_id and site_id must be the organization's: a 422 naming each tile
    and field that is not (another organization's device is "no such device", as elsewhere)."""
    errors = []
    for field, table, what in (("device_id", devices, "device"), ("site_id", sites, "site")):
        wanted = {getattr(tile, field) for tile in layout.tiles} - {None}
        if not wanted:
            continue
        found = set((await conn.scalars(select(table.c.id).where(
            table.c.organization_id == organization_id, table.c.id.in_(wanted)))).all())
        for index, tile in enumerate(layout.tiles):
            value = getattr(tile, field)
            if value is not None and value not in found:
                errors.append({"loc": ["body", "layout", "tiles", index, field],
                               "msg": f"tile {tile.id!r}: {field}: no such {what} {value}"})
    if errors:
        raise Invalid("; ".join(error["msg"] for error in errors[:5]), errors=errors)


async def list_dashboards(conn: AsyncConnection, organization_id: int,
                          params: PageParams) -> tuple[list, int]:
    query = scoped(dashboards, organization_id).where(_shared).order_by(dashboards.c.id)
    return await paginate(conn, query, params)


async def get_dashboard(conn: AsyncConnection, organization_id: int,
                        dashboard_id: int) -> RowMapping:
    row = (await conn.execute(scoped(dashboards, organization_id).where(
        dashboards.c.id == dashboard_id, _shared))).mappings().first()
    if row is None:
        raise NotFound(f"dashboard {dashboard_id} not found")
    return row


async def create_dashboard(conn: AsyncConnection, organization_id: int,
                           body: DashboardCreate) -> RowMapping:
    await _check_references(conn, organization_id, body.layout)
    now = utcnow()
    dashboard_id = await conn.scalar(insert(dashboards).values(
        organization_id=organization_id, name=body.name, description=body.description,
        layout=_stored(body.layout), created_at=now, updated_at=now,
    ).returning(dashboards.c.id))
    return await get_dashboard(conn, organization_id, dashboard_id)


async def _write(conn: AsyncConnection, organization_id: int, dashboard_id: int,
                 values: dict, layout: Layout | None) -> RowMapping:
    await get_dashboard(conn, organization_id, dashboard_id)
    if layout is not None:
        await _check_references(conn, organization_id, layout)
        values["layout"] = _stored(layout)
    if values:
        await conn.execute(update(dashboards).where(dashboards.c.id == dashboard_id)
                           .values(**values, updated_at=utcnow()))
    return await get_dashboard(conn, organization_id, dashboard_id)


async def update_dashboard(conn: AsyncConnection, organization_id: int, dashboard_id: int,
                           body: DashboardUpdate) -> RowMapping:
    """PATCH: only the fields sent change."""
    values = body.model_dump(exclude_unset=True, exclude={"layout"})
    return await _write(conn, organization_id, dashboard_id, values, body.layout)


async def replace_dashboard(conn: AsyncConnection, organization_id: int, dashboard_id: int,
                            body: DashboardReplace) -> RowMapping:
    """PUT: the dashboard as ``body`` has it, fields left out at their defaults (an empty
    layout, no description)."""
    values = {"name": body.name, "description": body.description}
    return await _write(conn, organization_id, dashboard_id, values, body.layout)


async def delete_dashboard(conn: AsyncConnection, organization_id: int,
                           dashboard_id: int) -> None:
    await get_dashboard(conn, organization_id, dashboard_id)
    await conn.execute(delete(dashboards).where(dashboards.c.id == dashboard_id))


async def _own_default(conn: AsyncConnection, user: AuthUser) -> RowMapping | None:
    return (await conn.execute(select(dashboards).where(
        dashboards.c.user_id == user.id,
        dashboards.c.organization_id == user.organization_id))).mappings().first()


async def get_default(conn: AsyncConnection, user: AuthUser) -> dict:
    """The user's own default dashboard; before they first save one, an empty one that is not
    stored (a read writes nothing; the first PUT stores it)."""
    row = await _own_default(conn, user)
    if row is not None:
        return dict(row)
    return {"id": None, "organization_id": user.organization_id, "user_id": user.id,
            "name": DEFAULT_NAME, "description": None, "layout": EMPTY_LAYOUT,
            "created_at": None, "updated_at": None}


async def replace_default(conn: AsyncConnection, user: AuthUser,
                          body: DefaultDashboardReplace) -> dict:
    """Store the user's own default dashboard whole, making it on the first call."""
    await _check_references(conn, user.organization_id, body.layout)
    values = {"name": body.name, "description": body.description,
              "layout": _stored(body.layout), "updated_at": utcnow()}
    row = await _own_default(conn, user)
    if row is None:
        await conn.execute(insert(dashboards).values(
            **values, organization_id=user.organization_id, user_id=user.id,
            created_at=values["updated_at"]))
    else:
        await conn.execute(update(dashboards).where(dashboards.c.id == row["id"])
                           .values(**values))
    return await get_default(conn, user)
