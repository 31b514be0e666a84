"""Offset pagination for entity lists: ``{"items", "total", "limit", "offset"}``."""

from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.kit.errors import Invalid

T = TypeVar("T")

MAX_LIMIT = 1000


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class PageParams(BaseModel):
    limit: int
    offset: int


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")] = 50,
    offset: Annotated[int | None, Query(ge=0, description="Items to skip")] = None,
    skip: Annotated[int | None, Query(ge=0, description="Alias of offset")] = None,
) -> PageParams:
    if offset is not None and skip is not None and offset != skip:
        raise Invalid("give offset or skip, not both with different values", loc=["query", "skip"])
    return PageParams(limit=limit, offset=offset if offset is not None else (skip or 0))


PageDep = Annotated[PageParams, Depends(page_params)]


async def paginate(conn: AsyncConnection, query: Select, params: PageParams) -> tuple[list, int]:
    """Run ``query`` for one page and count the whole result; returns ``(rows, total)``."""
    total = await conn.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = (await conn.execute(query.limit(params.limit).offset(params.offset))).mappings().all()
    return list(rows), int(total or 0)
