"""Dashboards: CRUD scoped to the organization, each user's own default, layouts validated."""

import pytest

from tests.helpers import unique


def _tile(tile_id: str = "t1", **fields) -> dict:
    return {"id": tile_id, "title": "Temperature", "key": "temperature",
            "layout": {"x": 0, "y": 0, "w": 6, "h": 4}, **fields}


def _dashboard(tenants, headers=None, **fields) -> dict:
    body = {"name": unique("board"), "layout": {"tiles": [_tile()]}, **fields}
    response = tenants.api.post("/dashboards", headers or tenants.owner, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_crud_round_trip_keeps_the_layout(tenants):
    api, owner = tenants.api, tenants.owner
    site = api.post("/sites", owner, json={"name": unique("site")}).json()
    device = api.device(owner, site_id=site["id"])
    tiles = [_tile("temp", device_id=device["id"], chart="area", range="-24h", interval="1h",
                   fn="avg,max", layout={"i": "temp", "x": 0, "y": 0, "w": 6, "h": 4}),
             {"id": "hum", "title": "Humidity", "sensorType": "humidity", "site_id": site["id"],
              "chart": "gauge", "layout": {"x": 6, "y": 0, "w": 3, "h": 2}}]
    created = _dashboard(tenants, layout={"tiles": tiles}, description="the plant")
    assert created["user_id"] is None and created["description"] == "the plant"
    shown = api.get(f"/dashboards/{created['id']}", owner).json()
    assert shown["layout"]["tiles"][0]["fn"] == "avg,max"
    assert shown["layout"]["tiles"][1]["sensorType"] == "humidity"
    assert shown["layout"]["tiles"][1]["key"] is None  # unset fields answer null
    assert api.get(f"/dashboards/{created['id']}", tenants.viewer).status_code == 200

    renamed = api.patch(f"/dashboards/{created['id']}", owner, json={"name": "Plant floor"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Plant floor"
    assert len(renamed.json()["layout"]["tiles"]) == 2  # PATCH keeps what it was not sent

    replaced = api.put(f"/dashboards/{created['id']}", owner, json={"name": "Bare"})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["layout"] == {"tiles": []} and replaced.json()["description"] is None

    listed = api.get("/dashboards", owner).json()
    assert created["id"] in [item["id"] for item in listed["items"]]
    assert api.delete(f"/dashboards/{created['id']}", owner).status_code == 204
    assert api.get(f"/dashboards/{created['id']}", owner).status_code == 404


def test_viewers_read_but_do_not_change_shared_dashboards(tenants):
    board = _dashboard(tenants)
    api = tenants.api
    assert api.post("/dashboards", tenants.viewer, json={"name": "x"}).status_code == 403
    assert api.patch(f"/dashboards/{board['id']}", tenants.viewer,
                     json={"name": "x"}).status_code == 403
    assert api.delete(f"/dashboards/{board['id']}", tenants.viewer).status_code == 403
    assert api.get(f"/dashboards/{board['id']}", tenants.owner).json()["name"] == board["name"]


def test_another_organization_never_sees_or_touches_a_dashboard(tenants):
    api = tenants.api
    board = _dashboard(tenants)
    listed = api.get("/dashboards", tenants.other).json()
    assert board["id"] not in [item["id"] for item in listed["items"]]
    for method, kwargs in (("GET", {}), ("PATCH", {"json": {"name": "stolen"}}),
                           ("PUT", {"json": {"name": "stolen"}}), ("DELETE", {})):
        response = api.request(method, f"/dashboards/{board['id']}", tenants.other, **kwargs)
        assert response.status_code == 404, (method, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert api.get(f"/dashboards/{board['id']}", tenants.owner).json() == board


def test_tiles_naming_another_organizations_device_or_site_are_refused(tenants):
    api = tenants.api
    foreign_device = api.device(tenants.other)
    foreign_site = api.post("/sites", tenants.other, json={"name": unique("site")}).json()
    tiles = [_tile("mine"), _tile("theirs", device_id=foreign_device["id"]),
             _tile("there", site_id=foreign_site["id"])]
    for send in (lambda body: api.post("/dashboards", tenants.owner, json=body),
                 lambda body: api.put("/dashboards/default", tenants.owner, json=body)):
        response = send({"name": "spy", "layout": {"tiles": tiles}})
        assert response.status_code == 422, response.text
        errors = response.json()["errors"]
        assert [error["loc"] for error in errors] == [
            ["body", "layout", "tiles", 1, "device_id"], ["body", "layout", "tiles", 2, "site_id"]]
        assert "tile 'theirs'" in errors[0]["msg"] and "no such device" in errors[0]["msg"]
    # ...and nothing was stored by either.
    assert api.get("/dashboards/default", tenants.owner).json()["id"] is None


def test_the_default_dashboard_is_each_users_own(tenants):
    api = tenants.api
    _, member = api.add_user(tenants.owner, "member")
    empty = api.get("/dashboards/default", member)
    assert empty.status_code == 200, empty.text
    assert empty.json()["id"] is None and empty.json()["layout"] == {"tiles": []}
    assert empty.json()["created_at"] is None

    saved = api.put("/dashboards/default", member, json={"layout": {"tiles": [_tile()]}})
    assert saved.status_code == 200, saved.text
    assert saved.json()["id"] is not None and saved.json()["name"] == "My dashboard"
    again = api.put("/dashboards/default", member,
                    json={"name": "Mine", "layout": {"tiles": [_tile("a"), _tile("b")]}})
    assert again.json()["id"] == saved.json()["id"]  # one per user, replaced
    assert [tile["id"] for tile in api.get("/dashboards/default", member).json()["layout"][
        "tiles"]] == ["a", "b"]

    # A viewer has one too; nobody else sees it, not even in the organization's list.
    viewer_saved = api.put("/dashboards/default", tenants.viewer,
                           json={"layout": {"tiles": [_tile("v")]}})
    assert viewer_saved.status_code == 200, viewer_saved.text
    assert api.get("/dashboards/default", tenants.owner).json()["id"] is None
    listed = [item["id"] for item in api.get("/dashboards", tenants.owner).json()["items"]]
    assert saved.json()["id"] not in listed and viewer_saved.json()["id"] not in listed
    assert api.get(f"/dashboards/{saved.json()['id']}", tenants.owner).status_code == 404
    assert api.delete(f"/dashboards/{saved.json()['id']}", tenants.owner).status_code == 404
    assert api.get("/dashboards/default", tenants.other).json()["layout"] == {"tiles": []}


def test_a_device_key_has_no_dashboard(tenants):
    device = tenants.api.device(tenants.owner)
    response = tenants.api.get("/dashboards/default", {"X-API-Key": device["api_key"]})
    assert response.status_code == 403, response.text


BAD_TILES = [
    ({"chart": "pie"}, "chart", "line"),
    ({"range": "yesterday"}, "range", "not a relative time"),
    ({"range": "-1700000000"}, "range", "not a relative time"),
    ({"range": "-99999w"}, "range", "ten years"),
    ({"interval": "5 minutes"}, "interval", "is not an interval"),
    ({"interval": "48h"}, "interval", "longer than a day"),
    ({"fn": "median"}, "fn", "not one of avg"),
    ({"title": "x" * 201}, "title", "at most 200"),
    ({"device_id": "abc"}, "device_id", "integer"),
    ({"colour": "red"}, "colour", "not permitted"),
    ({"layout": {"x": 0, "y": 0, "w": 0, "h": 1}}, "w", "greater than or equal to 1"),
    ({"layout": {"x": -1, "y": 0, "w": 2, "h": 1}}, "x", "greater than or equal to 0"),
    ({"layout": {"x": 0, "y": 0, "w": 2}}, "h", "Field required"),
]


@pytest.mark.parametrize("fields, field, message", BAD_TILES,
                         ids=[case[1] + ":" + str(next(iter(case[0].values())))[:12]
                              for case in BAD_TILES])
def test_a_bad_tile_is_a_422_naming_the_tile_and_the_field(tenants, fields, field, message):
    tiles = [_tile("good"), _tile("bad", **fields)]
    response = tenants.api.post("/dashboards", tenants.owner,
                                json={"name": "bad", "layout": {"tiles": tiles}})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "validation_error"
    error = problem["errors"][0]
    assert error["loc"][:4] == ["body", "layout", "tiles", 1], error
    assert field in error["loc"] or field in error["msg"], error
    assert message in error["msg"], error
    assert "tiles.1" in problem["detail"]


RULES_ACROSS_FIELDS = [
    ({"key": None}, "give either sensorType or key"),
    ({"sensorType": "humidity"}, "give either sensorType or key"),
    ({"layout": {"i": "other", "x": 0, "y": 0, "w": 2, "h": 2}}, "layout.i is 'other'"),
    ({"layout": {"x": 40, "y": 0, "w": 10, "h": 2}}, "the grid has 48 columns"),
    ({"range": "-52w", "interval": "1s"}, "buckets"),
]


@pytest.mark.parametrize("fields, message", RULES_ACROSS_FIELDS,
                         ids=[case[1][:20] for case in RULES_ACROSS_FIELDS])
def test_rules_across_a_tiles_fields_name_the_tile(tenants, fields, message):
    tile = {key: value for key, value in _tile("bad", **fields).items() if value is not None}
    response = tenants.api.post("/dashboards", tenants.owner,
                                json={"name": "bad", "layout": {"tiles": [_tile("ok"), tile]}})
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["loc"][:4] == ["body", "layout", "tiles", 1], error
    assert message in error["msg"], error


def test_layout_sizes_are_bounded_and_ids_unique(tenants):
    api = tenants.api
    many = [_tile(f"t{index}") for index in range(101)]
    response = api.post("/dashboards", tenants.owner, json={"name": "big",
                                                            "layout": {"tiles": many}})
    assert response.status_code == 422 and "at most 100" in response.text, response.text
    assert api.post("/dashboards", tenants.owner, json={
        "name": "ok", "layout": {"tiles": many[:100]}}).status_code == 201
    twice = api.post("/dashboards", tenants.owner, json={
        "name": "twice", "layout": {"tiles": [_tile("a"), _tile("b"), _tile("a")]}})
    assert twice.status_code == 422 and "tiles[2]: id 'a'" in twice.text, twice.text
    assert api.post("/dashboards", tenants.owner, json={
        "name": "x", "layout": {"tiles": [_tile("x" * 65)]}}).status_code == 422
    for layout in ([], {"tiles": "none"}, {"tiles": [], "columns": 12}, None):
        response = api.post("/dashboards", tenants.owner, json={"name": "x", "layout": layout})
        assert response.status_code == 422, (layout, response.text)
    assert api.patch(f"/dashboards/{_dashboard(tenants)['id']}", tenants.owner,
                     json={"layout": None}).status_code == 422


def test_the_api_index_links_to_the_docs_and_collections(client):
    response = client.get("/api/v1")
    assert response.status_code == 200, response.text
    links = response.json()["links"]
    assert links["docs"] == "/docs" and links["openapi"] == "/openapi.json"
    assert links["devices"] == "/api/v1/devices"
    assert links["dashboards/default"] == "/api/v1/dashboards/default"
    for href in (links["openapi"], links["health"], links["system/version"]):
        assert client.get(href).status_code == 200, href
    assert client.get(links["devices"]).status_code == 401  # there, behind a login
