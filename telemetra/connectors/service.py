"""Connectors: data from elsewhere (an HTTP service polled, or a plain MQTT topic) stored for
one of the organization's devices. Never commits."""

from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.connectors.events import ConnectorsChanged
from telemetra.connectors.schemas import (
    DEFAULT_INTERVAL_SECONDS,
    ConnectorCreate,
    ConnectorKind,
    ConnectorUpdate,
)
from telemetra.db.tables import connectors, devices
from telemetra.kit.errors import Invalid
from telemetra.kit.events import record
from telemetra.kit.pagination import PageParams, paginate
from telemetra.kit.scoping import ensure_name_free, ensure_scoped, get_scoped, scoped
from telemetra.kit.timeutil import utcnow

# The fields only one kind uses; the first is required by that kind.
_KIND_FIELDS = {
    ConnectorKind.http_pull: ("url", "interval_seconds"),
    ConnectorKind.mqtt_topic: ("topic",),
}


def _kind_fields(values: dict[str, Any]) -> dict[str, Any]:
    """The kind-dependent fields of a connector as they will be stored, or a 422 naming the
    field that is missing or belongs to the other kind."""
    kind = ConnectorKind(values["kind"])
    own = _KIND_FIELDS[kind]
    if values.get(own[0]) is None:
        raise Invalid(f"{own[0]}: required for a {kind.value} connector", loc=["body", own[0]])
    for other, fields in _KIND_FIELDS.items():
        for field in fields:
            if other is not kind and values.get(field) is not None:
                raise Invalid(f"{field}: not used by a {kind.value} connector; leave it out",
                              loc=["body", field])
    out = {field: values.get(field) for fields in _KIND_FIELDS.values() for field in fields}
    if kind is ConnectorKind.http_pull and out["interval_seconds"] is None:
        out["interval_seconds"] = DEFAULT_INTERVAL_SECONDS
    return out


def check_topic_outside_platform(topic: str, mqtt_prefix: str) -> None:
    """A connector's filter must not reach the platform's own topics (``<prefix>/...``): it
    would take the messages of other devices, other organizations' included. A filter whose
    leading levels are wildcards reaches them too."""
    levels = topic.split("/")
    for index, own in enumerate(mqtt_prefix.split("/")):
        level = levels[index] if index < len(levels) else None
        if level == "#":
            break
        if level not in ("+", own):
            return
    raise Invalid(f"topic: topics under '{mqtt_prefix}/' are the platform's own",
                  loc=["body", "topic"])


async def list_connectors(conn: AsyncConnection, organization_id: int, params: PageParams, *,
                          kind: ConnectorKind | None = None, device_id: int | None = None,
                          enabled: bool | None = None) -> tuple[list, int]:
    query = scoped(connectors, organization_id).order_by(connectors.c.id)
    if kind is not None:
        query = query.where(connectors.c.kind == kind.value)
    if device_id is not None:
        query = query.where(connectors.c.device_id == device_id)
    if enabled is not None:
        query = query.where(connectors.c.enabled == enabled)
    return await paginate(conn, query, params)


async def get_connector(conn: AsyncConnection, organization_id: int,
                        connector_id: int) -> RowMapping:
    return await get_scoped(conn, connectors, connector_id, organization_id, "connector")


async def create_connector(conn: AsyncConnection, organization_id: int, body: ConnectorCreate,
                           *, mqtt_prefix: str) -> RowMapping:
    """Create a connector; ``mqtt_prefix`` is the platform's own topic space, off limits."""
    values = body.model_dump()
    values.update(_kind_fields(values))
    if values["topic"] is not None:
        check_topic_outside_platform(values["topic"], mqtt_prefix)
    await ensure_scoped(conn, devices, body.device_id, organization_id, "device_id")
    await ensure_name_free(conn, connectors, organization_id, body.name)
    now = utcnow()
    connector_id = await conn.scalar(insert(connectors).values(
        **values, organization_id=organization_id, created_at=now, updated_at=now,
    ).returning(connectors.c.id))
    record(conn, ConnectorsChanged(organization_id))
    return await get_connector(conn, organization_id, connector_id)


async def update_connector(conn: AsyncConnection, organization_id: int, connector_id: int,
                           body: ConnectorUpdate, *, mqtt_prefix: str) -> RowMapping:
    """Apply the given fields and check the result as a whole. Changing the kind drops the
    old kind's fields (``url`` and ``interval_seconds``, or ``topic``) unless given again,
    which is then refused."""
    connector = await get_connector(conn, organization_id, connector_id)
    values = body.model_dump(exclude_unset=True)
    if not values:
        return connector
    if values.get("kind", connector["kind"]) != connector["kind"]:
        for field in _KIND_FIELDS[ConnectorKind(connector["kind"])]:
            values.setdefault(field, None)
    values.update(_kind_fields({**connector, **values}))
    if body.topic is not None:
        check_topic_outside_platform(body.topic, mqtt_prefix)
    if "device_id" in values:
        await ensure_scoped(conn, devices, values["device_id"], organization_id, "device_id")
    if "name" in values:
        await ensure_name_free(conn, connectors, organization_id, values["name"],
                               exclude_id=connector_id)
    await conn.execute(update(connectors).where(connectors.c.id == connector_id)
                       .values(**values, updated_at=utcnow()))
    record(conn, ConnectorsChanged(organization_id))
    return await get_connector(conn, organization_id, connector_id)


async def delete_connector(conn: AsyncConnection, organization_id: int,
                           connector_id: int) -> None:
    await get_connector(conn, organization_id, connector_id)
    await conn.execute(delete(connectors).where(connectors.c.id == connector_id))
    record(conn, ConnectorsChanged(organization_id))


async def mqtt_topic_connectors(conn: AsyncConnection) -> list[RowMapping]:
    """Every enabled ``mqtt_topic`` connector, across organizations: what the MQTT consumer
    subscribes to and where each topic's messages go."""
    c = connectors.c
    rows = await conn.execute(
        select(c.id, c.organization_id, c.device_id, c.topic, c.key, c.format, c.byte_order,
               c.max_age_seconds)
        .where(c.kind == ConnectorKind.mqtt_topic.value, c.enabled)
        .order_by(c.id))
    return list(rows.mappings().all())
