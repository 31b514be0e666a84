"""http_pull connectors against a real local upstream (``tests/connectors/upstream.py``), on
both backends: the run endpoint and what it stores, every way an upstream fails (a 502
storing nothing, shown as ``last_error``), re-pulls storing nothing twice, ``{since}``,
headers kept secret, allowed hosts, and the scheduled pulls of the job."""

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from telemetra.app import create_app
from telemetra.db.tables import connectors
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, make_settings
from tests.connectors.upstream import Upstream
from tests.helpers import Api, stored_scalar

# [157, 42, 76, 190] is -0.19938130676746368 as a little-endian float32 (API.md, body 6).
LITTLE = [157, 42, 76, 190]
VALUE = -0.19938130676746368


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream().start()
    yield server
    server.stop()


@pytest.fixture
def settings(database_url):
    # Tenant sign-up, so a second organization can exist.
    return make_settings(database_url, signup_mode="tenant")


@pytest.fixture
def device(api, root) -> dict:
    return api.device(root)


def connector(api, root, device, url: str, **fields) -> dict:
    created = api.post("/connectors", root, json={
        "name": fields.pop("name", "legacy"), "kind": "http_pull", "device_id": device["id"],
        "url": url, **fields})
    assert created.status_code == 201, created.text
    return created.json()


def run(api, root, connector_id: int):
    return api.post(f"/connectors/{connector_id}/run", root)


def readings(api, root, device) -> list[dict]:
    listed = api.get("/readings", root, params={"device_id": device["id"], "order": "asc",
                                                "include_invalid": "true"})
    assert listed.status_code == 200, listed.text
    return listed.json()["items"]


def points(*epochs: int, tags=None) -> list[dict]:
    return [{"time": epoch, "value": LITTLE, **({"tags": tags} if tags else {})}
            for epoch in epochs]


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def test_run_stores_body_6_and_a_re_pull_stores_nothing_twice(api, root, device, upstream):
    now = int(time.time())
    url = upstream.answer("/points", points(now - 20, now - 10))
    pull = connector(api, root, device, url, key="level", format="bytes")
    assert pull["timeout_seconds"] == 10 and pull["last_result"] is None

    first = run(api, root, pull["id"])
    assert first.status_code == 200, first.text
    assert first.json() == {"fetched": 2, "stored": 2, "duplicates": 0, "invalid": 0,
                            "rejected": []}
    stored = readings(api, root, device)
    assert [(r["key"], r["ts"], r["valid"]) for r in stored] == [
        ("level", iso(now - 20), True), ("level", iso(now - 10), True)]
    assert stored[0]["value"] == pytest.approx(VALUE, rel=1e-7)

    again = run(api, root, pull["id"])
    assert again.json() == {"fetched": 2, "stored": 0, "duplicates": 2, "invalid": 0,
                            "rejected": []}
    assert len(readings(api, root, device)) == 2
    shown = api.get(f"/connectors/{pull['id']}", root).json()
    assert shown["last_result"] == again.json()
    assert shown["last_run_at"] is not None and shown["last_error"] is None


def test_any_ingestion_body_single_or_list(api, root, device, upstream):
    now = int(time.time())
    single = upstream.answer("/one", {"sensor_type": "temperature", "value": 21.5,
                                      "unit": "°C", "timestamp": now - 5})
    keyed = upstream.answer("/keys", {"ts": now - 4, "values": {"humidity": 40}})
    listed = upstream.answer("/list", [{"sensor_type": "pressure", "value": 1013,
                                        "timestamp": now - 3},
                                       {"sensor_type": "pressure", "value": "high"}])
    answers = {}
    for name, url in (("one", single), ("keys", keyed), ("list", listed)):
        answers[name] = run(api, root, connector(api, root, device, url, name=name)["id"])
    assert answers["one"].json()["stored"] == 1
    assert answers["keys"].json()["stored"] == 1
    assert answers["list"].status_code == 200, answers["list"].text
    assert (answers["list"].json()["stored"], answers["list"].json()["fetched"]) == (1, 2)
    assert [r["index"] for r in answers["list"].json()["rejected"]] == [1]
    assert sorted(r["key"] for r in readings(api, root, device)) == [
        "humidity", "pressure", "temperature"]


def test_an_upstreams_extra_fields_are_ignored_not_refused(api, root, device, upstream):
    """Strict input is for what a user sends; an upstream service, which the connector's user
    cannot change, may add fields of its own (an id, a quality flag) to each point."""
    now = int(time.time())
    url = upstream.answer("/extra", [{"time": now - 5, "value": LITTLE, "id": 17,
                                      "quality": "good"}])
    answer = run(api, root, connector(api, root, device, url, key="level", format="bytes")["id"])
    assert answer.status_code == 200, answer.text
    assert (answer.json()["stored"], answer.json()["rejected"]) == (1, [])


def test_big_endian_bytes_when_the_connector_says_so(api, root, device, upstream):
    now = int(time.time())
    url = upstream.answer("/big", [{"time": now - 1, "value": LITTLE[::-1]}])
    pull = connector(api, root, device, url, byte_order="big")
    assert run(api, root, pull["id"]).json()["stored"] == 1
    [reading] = readings(api, root, device)
    assert (reading["key"], reading["value"]) == ("value", pytest.approx(VALUE, rel=1e-7))


def test_old_points_are_too_old_and_invalid_tags_make_points_invalid(api, root, device,
                                                                      upstream):
    now = int(time.time())
    url = upstream.answer("/mixed", [*points(now - 7200), *points(now - 30, tags=["suspect"]),
                                     *points(now - 20, tags=["calibrated"])])
    pull = connector(api, root, device, url, max_age_seconds=3600)
    answer = run(api, root, pull["id"]).json()
    assert (answer["stored"], answer["invalid"]) == (3, 2)
    by_time = {r["ts"]: r for r in readings(api, root, device)}
    assert by_time[iso(now - 7200)]["tags"] == ["too old"]
    assert not by_time[iso(now - 7200)]["valid"]
    assert not by_time[iso(now - 30)]["valid"]
    assert by_time[iso(now - 20)]["valid"]
    # A member does not see the invalid ones.
    _, member = api.add_user(root, "member")
    seen = api.get("/readings", member, params={"device_id": device["id"]}).json()["items"]
    assert [r["ts"] for r in seen] == [iso(now - 20)]


def test_since_is_the_newest_reading_the_connector_stored(api, root, device, upstream):
    now = int(time.time())
    url = upstream.answer("/since", points(now - 60, now - 50))
    pull = connector(api, root, device, url + "?since={since}&epoch={since_epoch}")
    run(api, root, pull["id"])
    upstream.answer("/since", [])  # nothing new: no error
    quiet = run(api, root, pull["id"])
    assert quiet.status_code == 200, quiet.text
    assert quiet.json() == {"fetched": 0, "stored": 0, "duplicates": 0, "invalid": 0,
                            "rejected": []}
    upstream.answer("/since", points(now - 40))
    run(api, root, pull["id"])
    run(api, root, pull["id"])
    asked = [(hit.query["since"], hit.query["epoch"]) for hit in upstream.hits_of("/since")]
    assert asked == [(["1970-01-01T00:00:00Z"], ["0"]),
                     ([iso(now - 50)], [str(now - 50)]),
                     ([iso(now - 50)], [str(now - 50)]),
                     ([iso(now - 40)], [str(now - 40)])]


@pytest.mark.parametrize("case", ["unreachable", "slow", "5xx", "4xx", "not json",
                                  "not an ingestion body", "a string",
                                  "nothing storable"])
def test_a_failing_upstream_is_a_502_that_stores_nothing(api, root, device, upstream, case):
    now = int(time.time())
    url, expected = {
        "unreachable": (f"http://127.0.0.1:{_closed_port()}/x", "cannot reach the upstream"),
        "slow": (upstream.answer("/slow", points(now - 1), delay=3), "within 0.5 s"),
        "5xx": (upstream.answer("/5xx", {"error": "down"}, status=503),
                "HTTP 503 Service Unavailable"),
        "4xx": (upstream.answer("/4xx", {"error": "who"}, status=401), "HTTP 401 Unauthorized"),
        "not json": (upstream.answer("/html", raw=b"<html>maintenance</html>"),
                     "the answer is not JSON"),
        "not an ingestion body": (upstream.answer("/odd", {"value": 3, "unit": "C"}),
                                  "no reading of the answer can be stored"),
        "nothing storable": (upstream.answer("/future", points(now + 86_400)),
                             "no reading of the answer can be stored: in the future"),
        "a string": (upstream.answer("/str", "hello"), "not an ingestion body"),
    }[case]
    pull = connector(api, root, device, url, timeout_seconds=0.5)
    failed = run(api, root, pull["id"])
    assert failed.status_code == 502, failed.text
    assert failed.headers["content-type"] == "application/problem+json"
    assert failed.json()["code"] == "upstream_error"
    assert expected in failed.json()["detail"], failed.json()["detail"]
    assert readings(api, root, device) == []
    shown = api.get(f"/connectors/{pull['id']}", root).json()
    assert expected in shown["last_error"]
    assert shown["last_run_at"] is None and shown["last_result"] is None

    # Fixed upstream: the next pull works and clears the error.
    fixed = upstream.answer("/fixed", points(now - 2))
    assert api.patch(f"/connectors/{pull['id']}", root, json={"url": fixed}).status_code == 200
    assert run(api, root, pull["id"]).json()["stored"] == 1
    shown = api.get(f"/connectors/{pull['id']}", root).json()
    assert shown["last_error"] is None and shown["last_result"]["stored"] == 1


def _closed_port() -> int:
    from tests.server import free_port
    return free_port()


def test_headers_are_sent_but_stored_encrypted_and_shown_masked(api, root, device, upstream,
                                                                 database_url):
    now = int(time.time())
    url = upstream.answer("/private", points(now - 1))
    pull = connector(api, root, device, url, headers={"X-Api-Key": "upstream-s3cret"})
    assert pull["headers"] == {"X-Api-Key": "********"}
    assert run(api, root, pull["id"]).json()["stored"] == 1
    assert upstream.hits_of("/private")[0].headers["X-Api-Key"] == "upstream-s3cret"
    listed = api.get("/connectors", root).json()["items"]
    assert "upstream-s3cret" not in str(listed)
    assert "upstream-s3cret" not in str(_stored_headers(database_url, pull["id"]))

    removed = api.patch(f"/connectors/{pull['id']}", root, json={"headers": None})
    assert removed.json()["headers"] is None
    run(api, root, pull["id"])
    assert "X-Api-Key" not in upstream.hits_of("/private")[-1].headers
    bad = api.patch(f"/connectors/{pull['id']}", root, json={"headers": {"X-A": "a\r\nb"}})
    assert bad.status_code == 422, bad.text
    mqtt = api.post("/connectors", root, json={
        "name": "topic", "kind": "mqtt_topic", "device_id": device["id"], "topic": "a/b",
        "headers": {"X-A": "b"}})
    assert mqtt.status_code == 422


def _stored_headers(database_url: str, connector_id: int):
    return stored_scalar(database_url, select(connectors.c.headers)
                         .where(connectors.c.id == connector_id))


@pytest.mark.parametrize("url", ["ftp://example.com/points", "file:///etc/passwd",
                                 "gopher://example.com/", "example.com/points"])
def test_only_http_and_https_urls(api, root, device, url):
    refused = api.post("/connectors", root, json={
        "name": "bad", "kind": "http_pull", "device_id": device["id"], "url": url})
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["loc"][-1] == "url"


def test_who_may_run_a_connector(api, root, device, upstream):
    pull = connector(api, root, device, upstream.answer("/p", []))
    _, member = api.add_user(root, "member")
    assert run(api, member, pull["id"]).status_code == 403
    _, other_owner = api.signup_tenant_owner()
    assert run(api, other_owner, pull["id"]).status_code == 404
    assert run(api, root, 999_999).status_code == 404
    topic = api.post("/connectors", root, json={
        "name": "topic", "kind": "mqtt_topic", "device_id": device["id"],
        "topic": "plain/data"}).json()
    assert run(api, root, topic["id"]).status_code == 422
    assert upstream.hits_of("/p") == []


def test_an_inactive_device_is_not_pulled_for(api, root, device, upstream):
    pull = connector(api, root, device, upstream.answer("/p", points(int(time.time()) - 1)))
    assert api.patch(f"/devices/{device['id']}", root,
                     json={"status": "inactive"}).status_code == 200
    refused = run(api, root, pull["id"])
    assert refused.status_code == 409, refused.text
    assert "inactive" in refused.json()["detail"]
    assert upstream.hits_of("/p") == [] and readings(api, root, device) == []
    assert "inactive" in api.get(f"/connectors/{pull['id']}", root).json()["last_error"]
    assert api.patch(f"/devices/{device['id']}", root,
                     json={"status": "active"}).status_code == 200
    assert run(api, root, pull["id"]).json()["stored"] == 1


def test_scheduled_pulls_run_every_interval_and_survive_failures(api, root, device,
                                                                 upstream):
    now = int(time.time())
    url = upstream.answer("/sched", {"error": "down"}, status=500)
    pull = connector(api, root, device, url + "?since={since_epoch}", interval_seconds=1)
    _wait(lambda: len(upstream.hits_of("/sched")) >= 2)
    shown = api.get(f"/connectors/{pull['id']}", root).json()
    assert "HTTP 500" in shown["last_error"] and readings(api, root, device) == []

    upstream.answer("/sched", points(now - 3, now - 2))  # back up: the job carried on
    _wait(lambda: len(readings(api, root, device)) == 2)
    _wait(lambda: api.get(f"/connectors/{pull['id']}", root).json()["last_error"] is None)
    seen = len(upstream.hits_of("/sched"))
    _wait(lambda: len(upstream.hits_of("/sched")) >= seen + 2)
    assert len(readings(api, root, device)) == 2  # re-pulls stored nothing twice
    assert upstream.hits_of("/sched")[-1].query["since"] == [str(now - 2)]

    assert api.patch(f"/connectors/{pull['id']}", root,
                     json={"enabled": False}).status_code == 200
    stopped = len(upstream.hits_of("/sched"))
    time.sleep(4)
    # At most the one pull already claimed when it was disabled (one at a time: the lease).
    assert len(upstream.hits_of("/sched")) <= stopped + 1


def test_allowed_hosts_restrict_targets(databases, upstream):
    database_url = databases.new()
    open_app = create_app(make_settings(database_url))
    with TestClient(open_app, raise_server_exceptions=False) as client:
        api = Api(client)
        root = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        device = api.device(root)
        pull = connector(api, root, device, upstream.answer("/p", []))
    restricted = create_app(make_settings(database_url,
                                          connector_allowed_hosts="*.example.com,localhost"))
    with TestClient(restricted, raise_server_exceptions=False) as client:
        api = Api(client)
        root = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        refused = api.post("/connectors", root, json={
            "name": "new", "kind": "http_pull", "device_id": device["id"],
            "url": upstream.url("/p")})
        assert refused.status_code == 422, refused.text
        assert "TELEMETRA_CONNECTOR_ALLOWED_HOSTS" in refused.json()["detail"]
        assert connector(api, root, device, "https://api.example.com/v1",
                         name="fine")["url"] == "https://api.example.com/v1"
        # One made before the restriction is refused when it runs.
        old = run(api, root, pull["id"])
        assert old.status_code == 502 and "ALLOWED_HOSTS" in old.json()["detail"]
        assert upstream.hits_of("/p") == []


def _wait(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_a_pull_past_the_daily_quota_is_a_429_storing_nothing(database_url, upstream):
    """The organization's plan, not the upstream, refuses it: a 429 with Retry-After (not a
    502 blaming the upstream), nothing stored, and the reason shown as last_error."""
    settings = make_settings(database_url, usage_flush_seconds=0.2,
                             plans={"tiny": {"readings_per_day": 1}})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        api = Api(client)
        root = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        org = api.get("/organizations/me", root).json()
        assert api.put(f"/admin/organizations/{org['id']}/plan", root,
                       json={"plan": "tiny"}).status_code == 200
        device = api.device(root)
        now = int(time.time())
        pull = connector(api, root, device, upstream.answer("/q", points(now - 20, now - 10)),
                         key="level", format="bytes")
        refused = run(api, root, pull["id"])
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "quota_exceeded" and "Retry-After" in refused.headers
        assert readings(api, root, device) == []
        shown = api.get(f"/connectors/{pull['id']}", root).json()
        assert "daily readings quota" in shown["last_error"]
