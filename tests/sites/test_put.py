"""PUT /sites/{id} replaces the site (API.md, "Updates"); PATCH changes only what is sent."""

from tests.helpers import unique


def _site(tenants, **fields) -> dict:
    response = tenants.api.post("/sites", tenants.owner, json={"name": unique("site"), **fields})
    assert response.status_code == 201, response.text
    return response.json()


def test_put_replaces_the_site_and_resets_what_is_left_out(tenants):
    site = _site(tenants, description="north hall", location="Ghent", timezone="Europe/Brussels")
    replaced = tenants.api.put(f"/sites/{site['id']}", tenants.owner,
                               json={"name": "Plant 2", "latitude": 51.05})
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["name"] == "Plant 2" and body["latitude"] == 51.05
    assert body["description"] is None and body["location"] is None and body["timezone"] is None
    assert tenants.api.get(f"/sites/{site['id']}", tenants.owner).json() == body


def test_put_without_the_required_name_is_a_422_naming_it(tenants):
    site = _site(tenants)
    response = tenants.api.put(f"/sites/{site['id']}", tenants.owner,
                               json={"description": "no name"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert ["body", "name"] in [error["loc"] for error in response.json()["errors"]]
    assert tenants.api.get(f"/sites/{site['id']}", tenants.owner).json() == site


def test_put_follows_the_rules_of_patch(tenants):
    site, taken = _site(tenants), _site(tenants)
    clash = tenants.api.put(f"/sites/{site['id']}", tenants.owner, json={"name": taken["name"]})
    assert clash.status_code == 409 and clash.json()["code"] == "conflict"
    unknown = tenants.api.put(f"/sites/{site['id']}", tenants.owner,
                              json={"name": "X", "colour": "red"})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["loc"] == ["body", "colour"]


def test_another_organizations_site_is_a_404_and_a_viewer_gets_403(tenants):
    site = _site(tenants, description="kept")
    foreign = tenants.api.put(f"/sites/{site['id']}", tenants.other, json={"name": "mine"})
    assert foreign.status_code == 404 and foreign.json()["code"] == "not_found"
    viewer = tenants.api.put(f"/sites/{site['id']}", tenants.viewer, json={"name": "mine"})
    assert viewer.status_code == 403 and viewer.json()["code"] == "forbidden"
    assert tenants.api.get(f"/sites/{site['id']}", tenants.owner).json() == site
