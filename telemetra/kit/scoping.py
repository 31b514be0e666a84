"""Organization scoping in one place: every org-owned table has ``organization_id``."""

from sqlalchemy import Select, Table, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.kit.errors import Conflict, Invalid, NotFound


def scoped(table: Table, organization_id: int) -> Select:
    """``SELECT * FROM table`` limited to one organization's rows."""
    return select(table).where(table.c.organization_id == organization_id)


async def get_scoped(conn: AsyncConnection, table: Table, object_id: int, organization_id: int,
                     what: str | None = None) -> RowMapping:
    """One row of the organization's, or NotFound (another organization's row is not found)."""
    row = (await conn.execute(
        scoped(table, organization_id).where(table.c.id == object_id)
    )).mappings().first()
    if row is None:
        raise NotFound(f"{what or table.name.rstrip('s')} {object_id} not found")
    return row


async def ensure_scoped(conn: AsyncConnection, table: Table, object_id: int | None,
                        organization_id: int, field: str) -> None:
    """A body's reference (e.g. ``site_id``) must name one of the organization's rows: 422."""
    if object_id is None:
        return
    found = await conn.scalar(
        select(table.c.id).where(table.c.id == object_id,
                                 table.c.organization_id == organization_id))
    if found is None:
        raise Invalid(f"{field}: no such {table.name.rstrip('s')} {object_id}",
                      loc=["body", field])


async def ensure_name_free(conn: AsyncConnection, table: Table, organization_id: int, name: str,
                           exclude_id: int | None = None) -> None:
    """Names are unique per organization (sites, groups): a taken one is a 409."""
    query = select(table.c.id).where(table.c.organization_id == organization_id,
                                     table.c.name == name)
    if exclude_id is not None:
        query = query.where(table.c.id != exclude_id)
    if await conn.scalar(query) is not None:
        raise Conflict(f"a {table.name.rstrip('s')} named {name!r} exists already")
