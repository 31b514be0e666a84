"""Connectors: CRUD for both kinds, fields checked by kind, topic filters, admins only, and the
MQTT consumer told after each committed change."""

import re

import pytest
from fastapi.testclient import TestClient

from telemetra.app import create_app
from telemetra.connectors.events import ConnectorsChanged
from telemetra.connectors.schemas import check_topic_filter
from telemetra.connectors.service import check_topic_outside_platform, mqtt_topic_connectors
from telemetra.kit.errors import Invalid
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, make_settings
from tests.helpers import Api

DEFAULT_PREFIX = "telemetra"


@pytest.fixture
def settings(database_url):
    # Tenant sign-up, so a second organization (and its devices) can exist.
    return make_settings(database_url, signup_mode="tenant")


class Resyncs:
    """Counts the committed connector changes the MQTT side is told of."""

    def __init__(self) -> None:
        self.resyncs = 0

    def __call__(self, changed: ConnectorsChanged) -> None:
        self.resyncs += 1


@pytest.fixture
def mqtt(client) -> Resyncs:
    counter = Resyncs()
    client.app.state.events.subscribe(ConnectorsChanged, counter)
    return counter


@pytest.fixture
def device(api, root) -> dict:
    return api.device(root)


def http_body(device_id: int, **fields) -> dict:
    return {"name": "weather", "kind": "http_pull", "device_id": device_id,
            "url": "https://api.example.com/v1/points?station=7", **fields}


def mqtt_body(device_id: int, **fields) -> dict:
    return {"name": "gateway", "kind": "mqtt_topic", "device_id": device_id,
            "topic": "sensor/data", **fields}


def error_fields(response) -> list[str]:
    assert response.status_code == 422, response.text
    return [error["loc"][-1] for error in response.json()["errors"]]


def test_http_pull_connector_round_trip(api, root, device):
    created = api.post("/connectors", root, json=http_body(device["id"], key="level",
                                                            max_age_seconds=600))
    assert created.status_code == 201, created.text
    connector = created.json()
    assert connector["url"] == "https://api.example.com/v1/points?station=7"  # kept as written
    assert (connector["kind"], connector["topic"], connector["interval_seconds"]) == (
        "http_pull", None, 60)
    assert (connector["format"], connector["byte_order"], connector["enabled"]) == (
        "auto", "little", True)
    assert (connector["key"], connector["max_age_seconds"]) == ("level", 600)
    assert connector["last_run_at"] is None and connector["last_error"] is None
    assert api.get(f"/connectors/{connector['id']}", root).json() == connector

    changed = api.patch(f"/connectors/{connector['id']}", root,
                        json={"interval_seconds": 300, "format": "bytes", "byte_order": "big",
                              "enabled": False})
    assert changed.status_code == 200, changed.text
    assert {k: changed.json()[k] for k in ("interval_seconds", "format", "byte_order",
                                           "enabled", "url")} == {
        "interval_seconds": 300, "format": "bytes", "byte_order": "big", "enabled": False,
        "url": connector["url"]}
    assert changed.json()["updated_at"] >= connector["updated_at"]

    assert api.delete(f"/connectors/{connector['id']}", root).status_code == 204
    assert api.get(f"/connectors/{connector['id']}", root).status_code == 404
    assert api.delete(f"/connectors/{connector['id']}", root).status_code == 404
    assert api.get(f"/devices/{device['id']}", root).status_code == 200  # the device stays


def test_mqtt_topic_connector_round_trip_and_list_filters(api, root, device):
    created = api.post("/connectors", root, json=mqtt_body(device["id"], format="sensor_type"))
    assert created.status_code == 201, created.text
    connector = created.json()
    assert (connector["topic"], connector["url"], connector["interval_seconds"]) == (
        "sensor/data", None, None)
    other_device = api.device(root)
    wildcard = api.post("/connectors", root, json=mqtt_body(
        other_device["id"], name="plant", topic="plant/+/line/#", enabled=False)).json()
    puller = api.post("/connectors", root, json=http_body(device["id"])).json()

    def names(**params) -> list[str]:
        listed = api.get("/connectors", root, params=params)
        assert listed.status_code == 200, listed.text
        assert listed.json()["total"] == len(listed.json()["items"])
        return [item["name"] for item in listed.json()["items"]]

    assert names() == ["gateway", "plant", "weather"]
    assert names(kind="mqtt_topic") == ["gateway", "plant"]
    assert names(device_id=device["id"]) == ["gateway", "weather"]
    assert names(enabled=False) == ["plant"]
    assert names(kind="http_pull", enabled=True) == ["weather"]
    assert api.get("/connectors", root, params={"limit": 1, "offset": 1}).json() == {
        "items": [wildcard], "total": 3, "limit": 1, "offset": 1}

    renamed = api.patch(f"/connectors/{connector['id']}", root,
                        json={"name": "gateway 2", "topic": "sensor/+/data",
                              "device_id": other_device["id"]})
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["topic"], renamed.json()["device_id"]) == (
        "gateway 2", "sensor/+/data", other_device["id"])
    assert api.delete(f"/connectors/{puller['id']}", root).status_code == 204
    assert names() == ["gateway 2", "plant"]


def test_duplicate_name_in_the_organization_is_a_conflict(api, root, device):
    assert api.post("/connectors", root, json=http_body(device["id"])).status_code == 201
    again = api.post("/connectors", root, json=mqtt_body(device["id"], name="weather"))
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    other = api.post("/connectors", root, json=mqtt_body(device["id"])).json()
    clash = api.patch(f"/connectors/{other['id']}", root, json={"name": "weather"})
    assert clash.status_code == 409
    # Another organization may use the name.
    _, tenant = api.signup_tenant_owner()
    theirs = api.post("/connectors", tenant, json=http_body(api.device(tenant)["id"]))
    assert theirs.status_code == 201, theirs.text


BAD_FIELDS = [
    (http_body(0, url=None), "url"),
    ({**http_body(0), "url": None, "topic": "sensor/data"}, "url"),
    (mqtt_body(0, topic=None), "topic"),
    (http_body(0, topic="sensor/data"), "topic"),
    (mqtt_body(0, url="https://example.com/data"), "url"),
    (mqtt_body(0, interval_seconds=30), "interval_seconds"),
    (http_body(0, url="ftp://example.com/data"), "url"),
    (http_body(0, url="https://exa mple.com/"), "url"),
    (http_body(0, url="/relative/path"), "url"),
    (http_body(0, interval_seconds=0), "interval_seconds"),
    (http_body(0, interval_seconds=86_401), "interval_seconds"),
    (http_body(0, max_age_seconds=0), "max_age_seconds"),
    (http_body(0, key="bad\nkey"), "key"),
    (http_body(0, format="xml"), "format"),
    (http_body(0, byte_order="middle"), "byte_order"),
    (http_body(0, kind="websocket"), "kind"),
    (http_body(0, name=" "), "name"),
    (http_body(0, color="red"), "color"),
]


def test_fields_are_checked_by_kind_naming_the_field(api, root, device):
    for body, field in BAD_FIELDS:
        response = api.post("/connectors", root, json={**body, "device_id": device["id"]})
        assert field in error_fields(response), (body, response.text)
    assert api.get("/connectors", root).json()["total"] == 0


# Topic filters: the rules are pure functions, checked here case by case; the API test below
# shows they answer a 422 naming `topic`.
BAD_FILTERS = [
    ("a/#/b", "'#' must be the whole last topic level"),
    ("a#", "'#' must be the whole last topic level"),
    ("#/", "'#' must be the whole last topic level"),
    ("a+/b", "'+' must occupy a whole topic level"),
    ("a/b+", "'+' must occupy a whole topic level"),
    ("$SYS/x", "'$'"),
    ("$share/group/sensor/data", "'$'"),
    ("nul\u0000/x", "NUL"),
    ("\ud800/x", "UTF-8"),  # a lone surrogate, which JSON can carry
]


@pytest.mark.parametrize("topic, reason", BAD_FILTERS)
def test_bad_topic_filters_are_refused(topic, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        check_topic_filter(topic)


@pytest.mark.parametrize("topic", ["sensor/data", "sensor/+/data", "plant/#", "+", "#", "a//b",
                                   "/x", "büro/温度", "a b/c"])
def test_good_topic_filters_are_kept(topic):
    assert check_topic_filter(topic) == topic


@pytest.mark.parametrize("topic", [f"{DEFAULT_PREFIX}/devices/1/readings", DEFAULT_PREFIX,
                                   f"{DEFAULT_PREFIX}/#", "+/devices/1/readings", "+", "#"])
def test_filters_reaching_the_platforms_topics_are_refused(topic):
    # A leading wildcard would match the platform's topics as well.
    with pytest.raises(Invalid, match=f"topics under '{DEFAULT_PREFIX}/' are the platform's"):
        check_topic_outside_platform(topic, DEFAULT_PREFIX)


@pytest.mark.parametrize("topic", ["sensor/data", f"x/{DEFAULT_PREFIX}/devices",
                                   f"{DEFAULT_PREFIX}x/y", "Telemetra/x", "/telemetra"])
def test_filters_outside_the_platforms_topics_are_allowed(topic):
    check_topic_outside_platform(topic, DEFAULT_PREFIX)


def test_topic_filters_through_the_api(api, root, device):
    for topic, reason in [("a/#/b", "'#' must be"), ("a+/b", "'+' must occupy"),
                          ("$SYS/x", "'$'"), ("x" * 301, "at most 300"),
                          (f"{DEFAULT_PREFIX}/devices/1/readings",
                           f"topics under '{DEFAULT_PREFIX}/' are the platform's own")]:
        response = api.post("/connectors", root, json=mqtt_body(device["id"], topic=topic))
        assert error_fields(response) == ["topic"], topic
        assert reason in response.json()["detail"], response.text
    for index, topic in enumerate(["sensor/+/data", "plant/#", "büro/温度"]):
        response = api.post("/connectors", root,
                            json=mqtt_body(device["id"], name=f"c{index}", topic=topic))
        assert response.status_code == 201 and response.json()["topic"] == topic, response.text


def test_the_platforms_prefix_comes_from_the_settings(database_url):
    settings = make_settings(database_url, mqtt_prefix="acme")
    with TestClient(create_app(settings)) as client:
        api = Api(client)
        root = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        device = api.device(root)
        refused = api.post("/connectors", root, json=mqtt_body(device["id"],
                                                              topic="acme/devices/1/readings"))
        assert "topics under 'acme/' are the platform's own" in refused.json()["detail"]
        allowed = api.post("/connectors", root, json=mqtt_body(
            device["id"], topic=f"{DEFAULT_PREFIX}/devices/1/readings"))
        assert allowed.status_code == 201, allowed.text


def test_device_must_be_the_organizations(api, root, device):
    _, tenant = api.signup_tenant_owner()
    foreign = api.device(tenant)
    for device_id in (foreign["id"], 987654):
        response = api.post("/connectors", root, json=mqtt_body(device_id))
        assert error_fields(response) == ["device_id"]
        assert "device_id" in response.json()["detail"]
    connector = api.post("/connectors", root, json=mqtt_body(device["id"])).json()
    moved = api.patch(f"/connectors/{connector['id']}", root, json={"device_id": foreign["id"]})
    assert error_fields(moved) == ["device_id"]
    # The other organization sees none of it, and cannot reach this one's connector.
    assert api.get("/connectors", tenant).json()["total"] == 0
    assert api.get(f"/connectors/{connector['id']}", tenant).status_code == 404
    assert api.patch(f"/connectors/{connector['id']}", tenant,
                     json={"enabled": False}).status_code == 404
    assert api.delete(f"/connectors/{connector['id']}", tenant).status_code == 404
    assert api.get(f"/connectors/{connector['id']}", root).json() == connector


def test_viewers_read_admins_write(api, root, device):
    connector = api.post("/connectors", root, json=mqtt_body(device["id"])).json()
    _, member = api.add_user(root, "member")
    _, viewer = api.add_user(root, "viewer")
    _, admin = api.add_user(root, "admin")
    for headers in (member, viewer):
        refused = api.post("/connectors", headers, json=mqtt_body(device["id"], name="mine"))
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        assert api.patch(f"/connectors/{connector['id']}", headers,
                         json={"enabled": False}).status_code == 403
        assert api.delete(f"/connectors/{connector['id']}", headers).status_code == 403
        assert api.get(f"/connectors/{connector['id']}", headers).json() == connector
        assert api.get("/connectors", headers).json()["total"] == 1
    created = api.post("/connectors", admin, json=http_body(device["id"]))
    assert created.status_code == 201, created.text
    assert api.delete(f"/connectors/{connector['id']}", admin).status_code == 204


def test_switching_kind_revalidates_the_whole_connector(api, root, device):
    connector = api.post("/connectors", root, json=http_body(device["id"])).json()
    url = f"/connectors/{connector['id']}"
    assert error_fields(api.patch(url, root, json={"kind": "mqtt_topic"})) == ["topic"]
    assert error_fields(api.patch(url, root, json={
        "kind": "mqtt_topic", "topic": "sensor/data",
        "url": "https://example.com/"})) == ["url"]
    assert error_fields(api.patch(url, root, json={
        "kind": "mqtt_topic", "topic": "sensor/data", "interval_seconds": 5})) == [
        "interval_seconds"]
    assert error_fields(api.patch(url, root, json={
        "kind": "mqtt_topic", "topic": f"{DEFAULT_PREFIX}/x"})) == ["topic"]
    assert api.get(url, root).json() == connector  # nothing of the refused changes stuck

    # A new kind drops the old kind's fields.
    switched = api.patch(url, root, json={"kind": "mqtt_topic", "topic": "sensor/data"})
    assert switched.status_code == 200, switched.text
    assert (switched.json()["kind"], switched.json()["topic"], switched.json()["url"],
            switched.json()["interval_seconds"]) == ("mqtt_topic", "sensor/data", None, None)
    # Same kind: fields of the other kind, or dropping a required one, are refused.
    assert error_fields(api.patch(url, root, json={"url": "https://example.com/"})) == ["url"]
    assert error_fields(api.patch(url, root, json={"topic": None})) == ["topic"]
    assert error_fields(api.patch(url, root, json={"kind": "http_pull"})) == ["url"]

    back = api.patch(url, root, json={"kind": "http_pull", "url": "http://10.0.0.5:8080/x"})
    assert back.status_code == 200, back.text
    assert (back.json()["topic"], back.json()["url"], back.json()["interval_seconds"]) == (
        None, "http://10.0.0.5:8080/x", 60)


def test_patch_cannot_null_a_required_field(api, root, device):
    connector = api.post("/connectors", root, json=mqtt_body(device["id"])).json()
    for field in ("name", "kind", "device_id", "format", "byte_order", "enabled"):
        response = api.patch(f"/connectors/{connector['id']}", root, json={field: None})
        assert field in error_fields(response), field
    assert api.get(f"/connectors/{connector['id']}", root).json() == connector


def test_an_empty_patch_changes_nothing(api, root, device):
    connector = api.post("/connectors", root, json=mqtt_body(device["id"])).json()
    same = api.patch(f"/connectors/{connector['id']}", root, json={})
    assert same.status_code == 200 and same.json() == connector


def test_deleting_the_device_deletes_its_connectors(api, root, device, mqtt):
    connector = api.post("/connectors", root, json=mqtt_body(device["id"])).json()
    assert api.delete(f"/devices/{device['id']}", root).status_code == 204
    assert api.get(f"/connectors/{connector['id']}", root).status_code == 404
    assert mqtt.resyncs == 2  # its creation, and its going with the device


def test_the_mqtt_consumer_resyncs_after_each_committed_change(api, root, device, mqtt):
    connector = api.post("/connectors", root, json=mqtt_body(device["id"])).json()
    assert mqtt.resyncs == 1
    assert api.patch(f"/connectors/{connector['id']}", root,
                     json={"enabled": False}).status_code == 200
    assert mqtt.resyncs == 2
    # Refused or failed changes commit nothing, so there is nothing to re-read.
    assert api.post("/connectors", root, json=mqtt_body(device["id"])).status_code == 409
    assert api.patch(f"/connectors/{connector['id']}", root,
                     json={"topic": "$SYS/x"}).status_code == 422
    assert api.delete("/connectors/987654", root).status_code == 404
    assert mqtt.resyncs == 2
    assert api.get("/connectors", root).status_code == 200
    assert mqtt.resyncs == 2
    assert api.delete(f"/connectors/{connector['id']}", root).status_code == 204
    assert mqtt.resyncs == 3


def test_mqtt_topic_connectors_lists_enabled_ones_across_organizations(api, client, root,
                                                                       device):
    ours = api.post("/connectors", root, json=mqtt_body(
        device["id"], key="level", format="bytes", byte_order="big",
        max_age_seconds=120)).json()
    api.post("/connectors", root, json=mqtt_body(device["id"], name="off", enabled=False))
    api.post("/connectors", root, json=http_body(device["id"]))
    tenant_user, tenant = api.signup_tenant_owner()
    tenant_device = api.device(tenant)
    theirs = api.post("/connectors", tenant, json=mqtt_body(tenant_device["id"],
                                                            topic="plant/#")).json()

    async def read() -> list[dict]:
        async with client.app.state.engine.connect() as conn:
            return [dict(row) for row in await mqtt_topic_connectors(conn)]

    assert client.portal.call(read) == [
        {"id": ours["id"], "organization_id": ours["organization_id"],
         "device_id": device["id"], "topic": "sensor/data", "key": "level", "format": "bytes",
         "byte_order": "big", "max_age_seconds": 120},
        {"id": theirs["id"], "organization_id": tenant_user["organization_id"],
         "device_id": tenant_device["id"], "topic": "plant/#", "key": None, "format": "auto",
         "byte_order": "little", "max_age_seconds": None},
    ]
