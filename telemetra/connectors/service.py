"""Connectors: data from elsewhere (an HTTP service polled, or a plain MQTT topic) stored for
one of the organization's devices. Never commits."""

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetra.connectors.events import ConnectorsChanged
from telemetra.connectors.schemas import (
    DEFAULT_INTERVAL_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    ConnectorCreate,
    ConnectorKind,
    ConnectorUpdate,
)
from telemetra.db.tables import connectors, devices
from telemetra.kit.crypto import SecretBox
from telemetra.kit.errors import Invalid
from telemetra.kit.events import record
from telemetra.kit.pagination import PageParams, paginate
from telemetra.kit.scoping import ensure_name_free, ensure_scoped, get_scoped, scoped
from telemetra.kit.timeutil import utcnow

# The fields only one kind uses; the first is required by that kind.
_KIND_FIELDS = {
    ConnectorKind.http_pull: ("url", "interval_seconds", "timeout_seconds", "headers"),
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
    if kind is ConnectorKind.http_pull and out["timeout_seconds"] is None:
        out["timeout_seconds"] = DEFAULT_TIMEOUT_SECONDS
    return out


def host_allowed(url: str, allowed_hosts: list[str]) -> bool:
    """Whether ``url``'s host is one ``TELEMETRA_CONNECTOR_ALLOWED_HOSTS`` lets connectors
    reach (any host when the list is empty); ``*.example.com`` allows its subdomains."""
    if not allowed_hosts:
        return True
    host = (urlsplit(url).hostname or "").lower()
    return any(host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:]))
               for allowed in allowed_hosts)


def _check_url(url: str | None, allowed_hosts: list[str]) -> None:
    if url is not None and not host_allowed(url, allowed_hosts):
        raise Invalid("url: its host is not one TELEMETRA_CONNECTOR_ALLOWED_HOSTS allows",
                      loc=["body", "url"])


def _sealed(headers: dict[str, str] | None, box: SecretBox) -> dict[str, str] | None:
    """Headers as stored: names in the clear, each value encrypted."""
    if headers is None:
        return None
    return {name: box.seal(value) for name, value in headers.items()}


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
                           *, mqtt_prefix: str, box: SecretBox,
                           allowed_hosts: list[str] = ()) -> RowMapping:
    """Create a connector; ``mqtt_prefix`` is the platform's own topic space, off limits;
    ``box`` seals an http_pull connector's headers. Its first scheduled pull is one interval
    after its creation (``POST /connectors/{id}/run`` pulls at once)."""
    values = body.model_dump()
    values.update(_kind_fields(values))
    if values["topic"] is not None:
        check_topic_outside_platform(values["topic"], mqtt_prefix)
    _check_url(values["url"], allowed_hosts)
    values["headers"] = _sealed(values["headers"], box)
    await ensure_scoped(conn, devices, body.device_id, organization_id, "device_id")
    await ensure_name_free(conn, connectors, organization_id, body.name)
    now = utcnow()
    if values["interval_seconds"] is not None:
        values["next_run_at"] = now + timedelta(seconds=values["interval_seconds"])
    connector_id = await conn.scalar(insert(connectors).values(
        **values, organization_id=organization_id, created_at=now, updated_at=now,
    ).returning(connectors.c.id))
    record(conn, ConnectorsChanged(organization_id))
    return await get_connector(conn, organization_id, connector_id)


async def update_connector(conn: AsyncConnection, organization_id: int, connector_id: int,
                           body: ConnectorUpdate, *, mqtt_prefix: str, box: SecretBox,
                           allowed_hosts: list[str] = ()) -> RowMapping:
    """Apply the given fields and check the result as a whole. Changing the kind drops the
    old kind's fields (``url``, ``interval_seconds``, ``timeout_seconds`` and ``headers``, or
    ``topic``) unless given again, which is then refused. A new interval (or kind) counts
    from now; a new url or device starts ``{since}`` afresh."""
    connector = await get_connector(conn, organization_id, connector_id)
    values = body.model_dump(exclude_unset=True)
    if not values:
        return connector
    if values.get("kind", connector["kind"]) != connector["kind"]:
        for field in _KIND_FIELDS[ConnectorKind(connector["kind"])]:
            values.setdefault(field, None)
    given_headers = values.get("headers")
    values.update(_kind_fields({**connector, **values}))
    if body.topic is not None:
        check_topic_outside_platform(body.topic, mqtt_prefix)
    if body.url is not None:
        _check_url(body.url, allowed_hosts)
    if "headers" in body.model_fields_set:
        values["headers"] = _sealed(given_headers, box)
    now = utcnow()
    if values["interval_seconds"] is None:
        values["next_run_at"] = None
    elif (values["interval_seconds"] != connector["interval_seconds"]
          or values.get("kind", connector["kind"]) != connector["kind"]):
        values["next_run_at"] = now + timedelta(seconds=values["interval_seconds"])
    if any(field in values and values[field] != connector[field]
           for field in ("url", "device_id")):
        values["newest_reading_at"] = None
    if "device_id" in values:
        await ensure_scoped(conn, devices, values["device_id"], organization_id, "device_id")
    if "name" in values:
        await ensure_name_free(conn, connectors, organization_id, values["name"],
                               exclude_id=connector_id)
    await conn.execute(update(connectors).where(connectors.c.id == connector_id)
                       .values(**values, updated_at=now))
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
