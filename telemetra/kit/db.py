"""One transaction per request, committed before the response is sent.

Routes use ``TransactionalRoute``: the first ``ConnDep`` a request resolves opens a connection
and a transaction; after the endpoint has produced its response the transaction is committed
(or rolled back if anything raised), and only then does the response go out. Services receive
the connection and never commit.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Awaitable, Callable, Coroutine

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from telemetra.kit.events import EventBus, take_recorded

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def open_transaction(engine: AsyncEngine, *, write: bool,
                           query_timeout: float | None = None) -> AsyncConnection:
    """A connection with its transaction begun (SQLite writers lock up front, see db.engine),
    limited to ``query_timeout`` seconds of database work if given (see db.engine)."""
    conn = await engine.connect()
    try:
        if write and engine.dialect.name == "sqlite":
            conn = await conn.execution_options(sqlite_write=True)
        if query_timeout:
            conn = await conn.execution_options(query_timeout=query_timeout)
        await conn.begin()
    except BaseException:
        await conn.close()
        raise
    return conn


Wait = Callable[[], Awaitable[None]]


async def finish(conn: AsyncConnection, bus: EventBus | None, *, commit: bool) -> Wait | None:
    """End ``conn``'s unit of work: commit, then publish the events recorded on it; or roll
    back and drop them (taken off ``conn`` first, so they never outlive it either way). A
    transport between processes (``bus.stage``) writes them in the transaction just before
    the commit. Returns what the caller awaits, once ``conn`` is closed, before it answers:
    for events that say ``answer_when_everywhere``, until every process applied them
    (bounded: ``telemetra.db.relay``)."""
    events = take_recorded(conn)
    if not commit:
        await conn.rollback()
        return None
    wait = None
    if bus is not None and bus.stage is not None and events:
        wait = await bus.stage(conn, events)
    await conn.commit()
    if bus is not None:
        bus.publish(events)
    return wait


@asynccontextmanager
async def write_transaction(engine: AsyncEngine, bus: EventBus | None = None, *,
                            query_timeout: float | None = None
                            ) -> AsyncIterator[AsyncConnection]:
    """The one way to open a unit of work outside a request::

        async with write_transaction(engine, bus) as conn:
            await devices.heartbeat(conn, ...)

    Commits when the block ends, rolls back if it raises; the events recorded on ``conn``
    (``kit.events.record``) are published on ``bus`` after the commit, dropped otherwise.
    A change that must be seen everywhere at once (a rotated key) leaves the block only once
    every process applied it, or after about a second."""
    conn = await open_transaction(engine, write=True, query_timeout=query_timeout)
    wait = None
    try:
        try:
            yield conn
        except BaseException:
            await finish(conn, bus, commit=False)
            raise
        wait = await finish(conn, bus, commit=True)
    finally:
        await conn.close()
    if wait is not None:
        await wait()


async def _finish(request: Request, *, commit: bool) -> Wait | None:
    conn: AsyncConnection | None = request.state._state.pop("db_conn", None)
    if conn is None:
        return None
    try:
        return await finish(conn, getattr(request.app.state, "events", None), commit=commit)
    finally:
        await conn.close()


class TransactionalRoute(APIRoute):
    """An APIRoute that commits the request's transaction before sending the response."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except BaseException:
                await _finish(request, commit=False)
                raise
            wait = await _finish(request, commit=True)
            if wait is not None:
                # The connection is back in the pool; the answer waits until every process
                # applied the change (a rotated key is refused everywhere once answered).
                await wait()
            return response

        return route_handler


def writes(endpoint: Callable) -> Callable:
    """Mark an endpoint answering a safe method that may still write (a device's poll marks
    its commands delivered), so that on SQLite its transaction takes the write lock up front
    instead of failing to upgrade a read when another write commits meanwhile."""
    endpoint.telemetra_writes = True
    return endpoint


async def get_conn(request: Request) -> AsyncConnection:
    state = request.state._state
    conn = state.get("db_conn")
    if conn is None:
        write = (request.method not in _SAFE_METHODS
                 or getattr(request.scope.get("endpoint"), "telemetra_writes", False))
        conn = await open_transaction(
            request.app.state.engine, write=write,
            query_timeout=request.app.state.settings.query_timeout_seconds)
        state["db_conn"] = conn
    return conn


ConnDep = Annotated[AsyncConnection, Depends(get_conn)]
