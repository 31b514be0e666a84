"""Who may call what, generated from the app's route table so no endpoint can be forgotten.

Every family below is built from the routes the app actually serves (every APIRoute under
/api/v1, plus /health):

* Roles: every (method, path) x every principal (viewer, member, admin, owner, superadmin,
  device key, no credential, expired token, deactivated user). ``EXPECTED`` names who may call
  each route; the table test fails if the app has a route the table lacks, or the table names a
  route the app lacks. A refusal must be a 401/403 problem+json with code
  ``unauthorized``/``forbidden`` that changed nothing; "allowed" means a success (or, only for a
  route without an example body here, a 422).
* Isolation: every route whose path takes an id, called by the owner of ANOTHER organization
  (tenant sign-up mode) with the victim's ids, is a 404 that changes nothing, checked by reading
  the objects as their owners before and after. Routes with several ids are tried with each id
  foreign in turn (the others the attacker's own) and with all foreign. Superadmin-only /admin
  routes are cross-organization by design: there the other organization's owner gets 403.
  Also generated: query strings (``?site_id=``...) and body fields (``site_id`` in a device
  body...) naming another organization's objects never reveal or touch them.

Speed: one world per backend (module scope) holds the principals and shared objects; a case
that writes gets fresh target objects, so destructive calls never eat what later cases need.
Password hashing uses cheap Argon2 parameters inside this module's world.
"""

import itertools
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import jwt
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from telemetra.app import create_app
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, make_settings
from tests.helpers import Api, bearer, device_key, unique

API_PREFIX = "/api/v1"
PASSWORD = "password-123"

# --------------------------------------------------------------------------------------------
# The expected access table: (method, path template) -> who may call it.
# --------------------------------------------------------------------------------------------

PUBLIC, VIEWER, MEMBER, ADMIN, OWNER, SUPERADMIN = (
    "public", "viewer", "member", "admin", "owner", "superadmin")
RANK = {VIEWER: 0, MEMBER: 1, ADMIN: 2, OWNER: 3, SUPERADMIN: 4}


@dataclass(frozen=True)
class Rule:
    minimum: str                     # public, or the least principal allowed
    device: bool = False             # a device key may call it too (for its own device only)
    self_minimum: str | None = None  # the minimum when the path's {user_id} is the caller


EXPECTED: dict[tuple[str, str], Rule] = {
    # system and auth: public
    ("GET", "/health"): Rule(PUBLIC),
    ("GET", "/system/version"): Rule(PUBLIC),
    ("GET", "/system/metrics"): Rule(SUPERADMIN),
    ("POST", "/auth/signup"): Rule(PUBLIC),
    ("POST", "/auth/login"): Rule(PUBLIC),
    ("POST", "/auth/refresh"): Rule(PUBLIC),
    # the caller's own account
    ("GET", "/auth/me"): Rule(VIEWER),
    ("POST", "/auth/logout"): Rule(VIEWER),
    ("POST", "/auth/password"): Rule(VIEWER),
    # users
    ("GET", "/users"): Rule(VIEWER),
    ("POST", "/users"): Rule(ADMIN),
    ("GET", "/users/{user_id}"): Rule(VIEWER),
    ("PATCH", "/users/{user_id}"): Rule(ADMIN, self_minimum=VIEWER),
    ("PUT", "/users/{user_id}"): Rule(ADMIN, self_minimum=VIEWER),
    ("DELETE", "/users/{user_id}"): Rule(ADMIN),
    ("PATCH", "/users/{user_id}/deactivate"): Rule(ADMIN),
    ("PATCH", "/users/{user_id}/activate"): Rule(ADMIN),
    # the organization
    ("GET", "/organizations/me"): Rule(VIEWER),
    ("PATCH", "/organizations/me"): Rule(OWNER),
    ("GET", "/organizations/me/usage"): Rule(VIEWER),
    # sites
    ("GET", "/sites"): Rule(VIEWER),
    ("POST", "/sites"): Rule(MEMBER),
    ("GET", "/sites/{site_id}"): Rule(VIEWER),
    ("PATCH", "/sites/{site_id}"): Rule(MEMBER),
    ("PUT", "/sites/{site_id}"): Rule(MEMBER),
    ("DELETE", "/sites/{site_id}"): Rule(MEMBER),
    ("GET", "/sites/{site_id}/statistics"): Rule(VIEWER),
    # devices
    ("GET", "/devices"): Rule(VIEWER),
    ("POST", "/devices"): Rule(MEMBER),
    ("GET", "/devices/{device_id}"): Rule(VIEWER),
    ("PATCH", "/devices/{device_id}"): Rule(MEMBER),
    ("PUT", "/devices/{device_id}"): Rule(MEMBER),
    ("DELETE", "/devices/{device_id}"): Rule(MEMBER),
    ("POST", "/devices/{device_id}/rotate-key"): Rule(MEMBER),
    ("GET", "/devices/{device_id}/status"): Rule(VIEWER),
    ("POST", "/devices/{device_id}/heartbeat"): Rule(MEMBER, device=True),
    ("POST", "/devices/{device_id}/logs"): Rule(MEMBER, device=True),
    ("GET", "/devices/{device_id}/logs"): Rule(VIEWER),
    # commands: members send and cancel; the device polls, reads and reports its own
    ("POST", "/devices/{device_id}/commands"): Rule(MEMBER),
    ("GET", "/devices/{device_id}/commands"): Rule(VIEWER, device=True),
    ("GET", "/devices/{device_id}/commands/{command_id}"): Rule(VIEWER, device=True),
    ("PATCH", "/devices/{device_id}/commands/{command_id}"): Rule(MEMBER, device=True),
    ("DELETE", "/devices/{device_id}/commands/{command_id}"): Rule(MEMBER),
    # sensors
    ("GET", "/sensors"): Rule(VIEWER),
    ("POST", "/sensors"): Rule(MEMBER),
    ("GET", "/sensors/{sensor_id}"): Rule(VIEWER),
    ("PATCH", "/sensors/{sensor_id}"): Rule(MEMBER),
    ("PUT", "/sensors/{sensor_id}"): Rule(MEMBER),
    ("DELETE", "/sensors/{sensor_id}"): Rule(MEMBER),
    # groups
    ("GET", "/groups"): Rule(VIEWER),
    ("POST", "/groups"): Rule(MEMBER),
    ("GET", "/groups/{group_id}"): Rule(VIEWER),
    ("PATCH", "/groups/{group_id}"): Rule(MEMBER),
    ("PUT", "/groups/{group_id}"): Rule(MEMBER),
    ("DELETE", "/groups/{group_id}"): Rule(MEMBER),
    ("POST", "/groups/{group_id}/devices/{device_id}"): Rule(MEMBER),
    ("DELETE", "/groups/{group_id}/devices/{device_id}"): Rule(MEMBER),
    # connectors: viewers read, admins manage
    ("GET", "/connectors"): Rule(VIEWER),
    ("POST", "/connectors"): Rule(ADMIN),
    ("GET", "/connectors/{connector_id}"): Rule(VIEWER),
    ("PATCH", "/connectors/{connector_id}"): Rule(ADMIN),
    ("DELETE", "/connectors/{connector_id}"): Rule(ADMIN),
    ("POST", "/connectors/{connector_id}/run"): Rule(ADMIN),
    # readings: ingestion (a device for itself, or a member naming the device)
    ("POST", "/readings"): Rule(MEMBER, device=True),
    ("POST", "/devices/{device_id}/readings"): Rule(MEMBER, device=True),
    # readings: queries (users) and review (admins)
    ("GET", "/readings"): Rule(VIEWER),
    ("GET", "/readings/latest"): Rule(VIEWER),
    ("GET", "/readings/aggregate"): Rule(VIEWER),
    ("GET", "/readings/export"): Rule(VIEWER),
    ("POST", "/readings/import"): Rule(MEMBER),
    ("GET", "/readings/{reading_id}"): Rule(VIEWER),
    ("DELETE", "/readings"): Rule(ADMIN),
    ("POST", "/readings/review"): Rule(ADMIN),
    ("PUT", "/readings/{reading_id}"): Rule(ADMIN),
    ("DELETE", "/readings/{reading_id}"): Rule(ADMIN),
    ("PUT", "/readings/{reading_id}/validate"): Rule(ADMIN),
    ("PUT", "/readings/{reading_id}/archive"): Rule(ADMIN),
    # alert rules: viewers read, admins manage; alerts: members acknowledge and resolve
    ("GET", "/alert-rules"): Rule(VIEWER),
    ("POST", "/alert-rules"): Rule(ADMIN),
    ("GET", "/alert-rules/{rule_id}"): Rule(VIEWER),
    ("PATCH", "/alert-rules/{rule_id}"): Rule(ADMIN),
    ("DELETE", "/alert-rules/{rule_id}"): Rule(ADMIN),
    ("GET", "/alerts"): Rule(VIEWER),
    ("GET", "/alerts/{alert_id}"): Rule(VIEWER),
    ("POST", "/alerts/{alert_id}/acknowledge"): Rule(MEMBER),
    ("POST", "/alerts/{alert_id}/resolve"): Rule(MEMBER),
    # analytics
    ("GET", "/analytics/summary"): Rule(VIEWER),
    ("GET", "/analytics/trends"): Rule(VIEWER),
    # dashboards: viewers read and keep their own default, members manage the shared ones
    ("GET", "/dashboards"): Rule(VIEWER),
    ("POST", "/dashboards"): Rule(MEMBER),
    ("GET", "/dashboards/default"): Rule(VIEWER),
    ("PUT", "/dashboards/default"): Rule(VIEWER),
    ("GET", "/dashboards/{dashboard_id}"): Rule(VIEWER),
    ("PATCH", "/dashboards/{dashboard_id}"): Rule(MEMBER),
    ("PUT", "/dashboards/{dashboard_id}"): Rule(MEMBER),
    ("DELETE", "/dashboards/{dashboard_id}"): Rule(MEMBER),
    # platform administration (cross-organization by design)
    ("GET", "/admin/stats"): Rule(SUPERADMIN),
    ("GET", "/admin/devices"): Rule(SUPERADMIN),
    ("GET", "/admin/devices/statuses"): Rule(SUPERADMIN),
    ("GET", "/admin/devices/{device_id}"): Rule(SUPERADMIN),
    ("PUT", "/admin/devices/{device_id}/status"): Rule(SUPERADMIN),
    ("DELETE", "/admin/devices/{device_id}"): Rule(SUPERADMIN),
    ("GET", "/admin/users"): Rule(SUPERADMIN),
    ("GET", "/admin/organizations"): Rule(SUPERADMIN),
    ("PUT", "/admin/organizations/{organization_id}/plan"): Rule(SUPERADMIN),
}

# Routes that spend the caller's credentials: every principal calls them with fresh ones.
CONSUMES_CREDENTIALS = {("POST", "/auth/logout"), ("POST", "/auth/password")}

# Writes whose ids are checked per row: another organization's id selects nothing, so a 2xx
# whose named count is 0 and that changed nothing is fine. Elsewhere an id in a write names an
# object to act on or refer to (bulk delete and review included), and another organization's
# is refused (404/422).
SELECTS_NOTHING = {
    ("POST", "/readings/import"): "accepted",  # rows of an unknown device are rejected
}

# --------------------------------------------------------------------------------------------
# The app's route table, read at collection time.
# --------------------------------------------------------------------------------------------


def _route_contexts(app) -> list:
    try:  # FastAPI versions that keep included routers nested (lazily flattened)
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is flat already
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def app_operations(app) -> dict[tuple[str, str], str]:
    """``(method, template) -> full path`` of every APIRoute under /api/v1, and /health.

    The template drops the /api/v1 prefix; paths outside it (/health) are kept whole. Path
    convertors are dropped too (``{device_id:int}`` is ``{device_id}``), as OpenAPI does.
    """
    operations: dict[tuple[str, str], str] = {}
    for route in _route_contexts(app):
        if not isinstance(getattr(route, "original_route", route), APIRoute):
            continue
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        if path.startswith(API_PREFIX + "/"):
            template = path[len(API_PREFIX):]
        elif path == "/health":
            template = path
        else:
            continue
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            assert (method, template) not in operations, f"two routes for {method} {template}"
            operations[(method, template)] = path
    return operations


_APP = create_app(make_settings("sqlite:///unused-route-table.db"))  # never started
ROUTES = app_operations(_APP)
OPENAPI = _APP.openapi()


def path_params(template: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", template)


def _openapi_operation(method: str, template: str) -> dict:
    return OPENAPI["paths"].get(ROUTES[(method, template)], {}).get(method.lower(), {})


def _schema_properties(schema: dict | None) -> set[str]:
    """Top-level property names of a JSON body schema ($ref, anyOf, oneOf, allOf followed)."""
    if not schema:
        return set()
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _schema_properties(OPENAPI["components"]["schemas"][name])
    names = set(schema.get("properties", {}))
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            names |= _schema_properties(sub)
    return names


def query_params(method: str, template: str) -> list[str]:
    return [p["name"] for p in _openapi_operation(method, template).get("parameters", [])
            if p.get("in") == "query"]


def body_properties(method: str, template: str) -> set[str]:
    content = _openapi_operation(method, template).get("requestBody", {}).get("content", {})
    return _schema_properties(content.get("application/json", {}).get("schema"))


def _by_path(keys):
    return sorted(keys, key=lambda key: (key[1], key[0]))


# --------------------------------------------------------------------------------------------
# The world: organizations, principals and shared objects, one per backend.
# --------------------------------------------------------------------------------------------


@dataclass
class Org:
    label: str
    id: int
    owner: dict                                           # the owner's auth headers
    shared: dict[str, object] = field(default_factory=dict)  # path parameter -> shared object


@dataclass
class Principal:
    name: str
    headers: dict
    org: Org
    user_id: int | None = None
    username: str | None = None
    password: str | None = None
    device_id: int | None = None


@dataclass(frozen=True)
class Raw:
    """A body that is not JSON (an upload)."""
    content: bytes
    media_type: str


@dataclass
class World:
    api: Api
    settings: object
    home: Org        # org A: the principals' organization, and the victim of isolation tests
    default: Org     # the superadmin's organization
    other: Org       # org B: the attacker
    login_username: str
    principals: dict[str, Principal] = field(default_factory=dict)
    attacker_device: Principal | None = None

    def call(self, method: str, template: str, ids: dict, headers: dict | None,
             body=None, query: dict | None = None):
        path = ROUTES[(method, template)].format(**ids)
        headers = dict(headers or {})
        if isinstance(body, Raw):
            kwargs = {"content": body.content}
            headers["Content-Type"] = body.media_type
        else:
            kwargs = {} if body is None else {"json": body}
        return self.api.client.request(method, path, headers=headers, params=query, **kwargs)

    def expired(self, headers: dict) -> str:
        """The access token in ``headers`` as if a login had handed it out an hour ago
        (re-signed with the test secret: same user, stamp and session, expired)."""
        token = headers["Authorization"].removeprefix("Bearer ")
        claims = jwt.decode(token, self.settings.secret_key, algorithms=["HS256"],
                            options={"verify_exp": False})
        now = int(time.time())
        claims.update(jti=uuid.uuid4().hex, iat=now - 3600, exp=now - 60)
        return jwt.encode(claims, self.settings.secret_key, algorithm="HS256")

    def fresh_headers(self, principal: Principal) -> dict:
        """New credentials of the same kind, for a call that may spend them (logout)."""
        if principal.name == "expired":
            return bearer(self.expired(principal.headers))
        if principal.name == "deactivated":  # cannot log in: the same as its old token
            return principal.headers
        if principal.password:
            return self.api.login(principal.username, principal.password)
        return principal.headers


def _created(response) -> dict:
    assert response.status_code == 201, response.text
    return response.json()


def _new_site(world: World, org: Org) -> int:
    return _created(world.api.post("/sites", org.owner, json={"name": unique("site")}))["id"]


def _new_device(world: World, org: Org) -> int:
    return world.api.device(org.owner)["id"]


def _new_sensor(world: World, org: Org) -> int:
    return _created(world.api.post("/sensors", org.owner, json={
        "device_id": org.shared["device_id"], "key": unique("key"), "type": "temperature"}))["id"]


def _new_group(world: World, org: Org) -> int:
    return _created(world.api.post("/groups", org.owner, json={"name": unique("group")}))["id"]


def _connector_body(device_id: int) -> dict:
    return {"name": unique("connector"), "kind": "mqtt_topic", "device_id": device_id,
            "topic": unique("plant/line")}


def _new_connector(world: World, org: Org) -> int:
    return _created(world.api.post("/connectors", org.owner,
                                   json=_connector_body(org.shared["device_id"])))["id"]


def _new_user(world: World, org: Org) -> int:
    return _created(world.api.post("/users", org.owner, json={
        "username": unique("target"), "password": PASSWORD, "role": "member"}))["id"]


def _rule_body() -> dict:
    # Organization-wide, so a body reference added by a case is the rule's only scope.
    return {"name": unique("rule"), "key": unique("hot"), "condition": "gt", "threshold": 0}


def _new_rule(world: World, org: Org) -> int:
    return _created(world.api.post("/alert-rules", org.owner, json=_rule_body()))["id"]


def _new_alert(world: World, org: Org) -> int:
    """An active alert: a rule of its own key, fired by one reading of the shared device."""
    body = _rule_body()
    rule_id = _created(world.api.post("/alert-rules", org.owner, json=body))["id"]
    sent = world.api.post(f"/devices/{org.shared['device_id']}/readings", org.owner,
                          json={body["key"]: 1})
    assert sent.status_code == 202, sent.text
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # evaluation follows the commit
        items = world.api.get("/alerts", org.owner, params={"rule_id": rule_id}).json()["items"]
        if items:
            return items[0]["id"]
        time.sleep(0.05)
    pytest.fail("the alert did not fire")


def _dashboard_body() -> dict:
    return {"name": unique("dashboard"), "layout": {"tiles": [
        {"id": "t1", "title": "Temperature", "key": "temperature", "range": "-24h",
         "layout": {"x": 0, "y": 0, "w": 6, "h": 4}}]}}


def _new_dashboard(world: World, org: Org) -> int:
    return _created(world.api.post("/dashboards", org.owner, json=_dashboard_body()))["id"]


def _the_organization(world: World, org: Org) -> int:
    return org.id


_READINGS_BEFORE = int(time.time()) - 3600
_reading_seconds = itertools.count(1)


def ingest_one(world: World, org: Org, device_id: int) -> tuple[str, int]:
    """One stored reading of the device at a second of its own; ``(reading id, epoch)``."""
    ts = _READINGS_BEFORE - next(_reading_seconds)
    sent = world.api.post(f"/devices/{device_id}/readings", org.owner,
                          json={"ts": ts, "values": {"temperature": 20.5}})
    assert sent.status_code == 202 and sent.json()["accepted"] == 1, sent.text
    found = world.api.get("/readings", org.owner,
                          params={"device_id": device_id, "start": ts, "end": ts})
    assert found.status_code == 200 and len(found.json()["items"]) == 1, found.text
    return found.json()["items"][0]["id"], ts


def _new_reading(world: World, org: Org) -> str:
    return ingest_one(world, org, org.shared["device_id"])[0]


class CommandId(int):
    """A command's id that knows its device, which its paths name too (``{id.device_id}``)."""
    device_id: int


def _new_command(world: World, org: Org, device_id: int | None = None) -> CommandId:
    """A queued command, on a fresh device unless one is named."""
    device_id = device_id or _new_device(world, org)
    command = CommandId(_created(world.api.post(f"/devices/{device_id}/commands", org.owner,
                                                json={"name": "reboot"}))["id"])
    command.device_id = device_id
    return command


# Path parameter -> how to make one in an organization (as its owner), and how its owner reads
# it back to see whether anything changed. A new kind of id must be added here, or its routes'
# cases fail.
FACTORIES: dict[str, Callable[[World, Org], object]] = {
    "site_id": _new_site,
    "device_id": _new_device,
    "sensor_id": _new_sensor,
    "group_id": _new_group,
    "connector_id": _new_connector,
    "user_id": _new_user,
    "organization_id": _the_organization,
    "reading_id": _new_reading,
    "command_id": _new_command,
    "rule_id": _new_rule,
    "alert_id": _new_alert,
    "dashboard_id": _new_dashboard,
}
WITNESSES: dict[str, list[str]] = {
    "site_id": ["/sites/{id}", "/sites/{id}/statistics"],
    "device_id": ["/devices/{id}", "/devices/{id}/logs", "/sensors?device_id={id}",
                  "/readings?device_id={id}&include_invalid=true", "/devices/{id}/commands",
                  "/connectors?device_id={id}"],
    "sensor_id": ["/sensors/{id}"],
    "group_id": ["/groups/{id}?include_devices=true"],
    "connector_id": ["/connectors/{id}"],
    "user_id": ["/users/{id}"],
    "organization_id": ["/organizations/me"],
    "reading_id": ["/readings/{id}"],
    "command_id": ["/devices/{id.device_id}/commands/{id}"],
    "rule_id": ["/alert-rules/{id}"],
    "alert_id": ["/alerts/{id}"],
    "dashboard_id": ["/dashboards/{id}"],
}


def target(world: World, org: Org, param: str, *, fresh: bool):
    if param not in FACTORIES:
        pytest.fail(f"no factory for path parameter {{{param}}}: add it to FACTORIES and "
                    f"WITNESSES in {__name__}")
    if fresh or param not in org.shared:
        return FACTORIES[param](world, org)
    return org.shared[param]


Witnessed = list[tuple[str, Org, object]]  # (parameter kind, organization, id)


def snapshot(world: World, objects: dict[str, tuple[Org, object]],
             extra: Witnessed = ()) -> dict:
    """Every object of a call (and extra ones), each read by its organization's owner."""
    seen = {}
    items = [(param, org, object_id) for param, (org, object_id) in objects.items()]
    for param, org, object_id in items + list(extra):
        for witness in WITNESSES[param]:
            path = witness.format(id=object_id)
            response = world.api.get(path, org.owner)
            seen[f"{org.label} {path}"] = (response.status_code, response.json())
    return seen


def _assert_present(seen: dict) -> None:
    broken = {path: status for path, (status, _) in seen.items() if status != 200}
    assert not broken, f"witness reads failed before the call: {broken}"


def _ids(objects: dict) -> dict:
    return {param: object_id for param, (_, object_id) in objects.items()}


# Set-up a call needs so that its effect, were it wrongly allowed, would show.

def _prepare_membership(world: World, objects: dict) -> None:
    (group_org, group_id), (device_org, device_id) = objects["group_id"], objects["device_id"]
    if group_org is device_org:
        response = world.api.post(f"/groups/{group_id}/devices/{device_id}", group_org.owner)
        assert response.status_code == 204, response.text


def _prepare_deactivated(world: World, objects: dict) -> None:
    org, user_id = objects["user_id"]
    response = world.api.patch(f"/users/{user_id}/deactivate", org.owner)
    assert response.status_code == 200, response.text


def _prepare_command_of_device(world: World, objects: dict) -> None:
    # A command is reached through its own device: in one organization, make it the device's.
    (device_org, device_id), (command_org, command_id) = (objects["device_id"],
                                                          objects["command_id"])
    if device_org is command_org and command_id.device_id != device_id:
        objects["command_id"] = (device_org, _new_command(world, device_org, device_id))


_replaced_sensor: dict = {}  # what a PUT of the case's sensor must repeat: its device and key


def _prepare_sensor_replacement(world: World, objects: dict) -> None:
    org, sensor_id = objects["sensor_id"]
    sensor = world.api.get(f"/sensors/{sensor_id}", org.owner).json()
    _replaced_sensor.update(device_id=sensor["device_id"], key=sensor["key"])


PREPARE: dict[tuple[str, str], Callable[[World, dict], None]] = {
    ("DELETE", "/groups/{group_id}/devices/{device_id}"): _prepare_membership,
    ("PATCH", "/users/{user_id}/activate"): _prepare_deactivated,
    ("GET", "/devices/{device_id}/commands/{command_id}"): _prepare_command_of_device,
    ("PATCH", "/devices/{device_id}/commands/{command_id}"): _prepare_command_of_device,
    ("DELETE", "/devices/{device_id}/commands/{command_id}"): _prepare_command_of_device,
    ("PUT", "/sensors/{sensor_id}"): _prepare_sensor_replacement,
}


@dataclass
class Ctx:
    """What an example body or query string may need."""
    world: World
    org: Org                  # the organization the call acts in
    principal: Principal | None
    witness: Witnessed = field(default_factory=list)  # objects it makes that a call may touch

    def fresh_device(self) -> int:
        """A new device of the organization, watched for changes."""
        device_id = _new_device(self.world, self.org)
        self.witness.append(("device_id", self.org, device_id))
        return device_id

    def device_with_a_reading(self) -> dict:
        """A fresh device holding one reading, and a time range holding every reading this
        module stores (so another organization's device named instead would have some)."""
        device_id = self.fresh_device()
        ingest_one(self.world, self.org, device_id)
        return {"device_id": device_id, "start": _READINGS_BEFORE - 86_400,
                "end": _READINGS_BEFORE}

    @property
    def is_device(self) -> bool:
        return self.principal is not None and self.principal.name == "device"


def _password_body(ctx: Ctx) -> dict:
    password = ctx.principal.password if ctx.principal and ctx.principal.password else PASSWORD
    return {"current_password": password, "new_password": password}


def _refresh_body(ctx: Ctx) -> dict:
    return {"refresh_token": ctx.world.api.tokens(ctx.world.login_username,
                                                  PASSWORD)["refresh_token"]}


def _user_replacement(ctx: Ctx) -> dict:
    # The caller's own role: kept when the user is the caller (nobody changes their own),
    # granted to another user (a fresh member) by those who may.
    role = {SUPERADMIN: OWNER}.get(ctx.principal.name, ctx.principal.name) if (
        ctx.principal is not None and ctx.principal.name in RANK) else MEMBER
    return {"full_name": unique("Name "), "role": role}


# Valid example bodies, so an allowed call succeeds rather than failing validation.
BODIES: dict[tuple[str, str], Callable[[Ctx], object]] = {
    ("POST", "/auth/signup"): lambda ctx: {"username": unique("signup"), "password": PASSWORD},
    ("POST", "/auth/login"): lambda ctx: {"username": ctx.world.login_username,
                                          "password": PASSWORD},
    ("POST", "/auth/refresh"): _refresh_body,
    ("POST", "/auth/password"): _password_body,
    ("POST", "/users"): lambda ctx: {"username": unique("user"), "password": PASSWORD,
                                     "role": "viewer"},
    ("PATCH", "/users/{user_id}"): lambda ctx: {"full_name": unique("Name "),
                                                "email": unique("mail") + "@example.com"},
    ("PUT", "/users/{user_id}"): _user_replacement,
    ("PATCH", "/organizations/me"): lambda ctx: {"retention_days": 400},
    ("POST", "/sites"): lambda ctx: {"name": unique("site")},
    ("PATCH", "/sites/{site_id}"): lambda ctx: {"description": unique("changed ")},
    ("PUT", "/sites/{site_id}"): lambda ctx: {"name": unique("replaced ")},
    ("POST", "/devices"): lambda ctx: {"name": unique("device")},
    ("PATCH", "/devices/{device_id}"): lambda ctx: {"location": unique("moved ")},
    ("PUT", "/devices/{device_id}"): lambda ctx: {"name": unique("replaced ")},
    ("POST", "/devices/{device_id}/heartbeat"): lambda ctx: {"firmware_version": "1.2.3"},
    ("POST", "/devices/{device_id}/logs"): lambda ctx: {"level": "info", "message": "hello"},
    ("POST", "/devices/{device_id}/commands"): lambda ctx: {"name": "reboot",
                                                            "params": {"delay_s": 5}},
    ("PATCH", "/devices/{device_id}/commands/{command_id}"): lambda ctx: {
        "status": "succeeded", "result": {"ok": True}},
    ("POST", "/sensors"): lambda ctx: {"device_id": ctx.org.shared["device_id"],
                                       "key": unique("key"), "type": "temperature"},
    ("PATCH", "/sensors/{sensor_id}"): lambda ctx: {"unit": unique("u")},
    ("PUT", "/sensors/{sensor_id}"): lambda ctx: {
        "device_id": ctx.org.shared["device_id"], "key": unique("key"), **_replaced_sensor,
        "unit": unique("u")},
    ("POST", "/groups"): lambda ctx: {"name": unique("group")},
    ("PATCH", "/groups/{group_id}"): lambda ctx: {"description": unique("changed ")},
    ("PUT", "/groups/{group_id}"): lambda ctx: {"name": unique("replaced ")},
    ("POST", "/connectors"): lambda ctx: _connector_body(ctx.fresh_device()),
    ("PATCH", "/connectors/{connector_id}"): lambda ctx: {"enabled": False,
                                                          "max_age_seconds": 3600},
    ("POST", "/readings"): lambda ctx: {"temperature": 21.5},
    ("POST", "/devices/{device_id}/readings"): lambda ctx: {"temperature": 21.5},
    ("POST", "/readings/review"): lambda ctx: {"action": "archive",
                                               **ctx.device_with_a_reading()},
    ("PUT", "/readings/{reading_id}"): lambda ctx: {"tags": ["checked"]},
    ("POST", "/readings/import"): lambda ctx: Raw(
        f"key,ts,value\ntemperature,{_READINGS_BEFORE - next(_reading_seconds)},1.5\n".encode(),
        "text/csv"),
    ("POST", "/alert-rules"): lambda ctx: _rule_body(),
    ("PATCH", "/alert-rules/{rule_id}"): lambda ctx: {"threshold": 5, "severity": "critical"},
    ("POST", "/dashboards"): lambda ctx: _dashboard_body(),
    ("PATCH", "/dashboards/{dashboard_id}"): lambda ctx: {"description": unique("changed ")},
    ("PUT", "/dashboards/{dashboard_id}"): lambda ctx: _dashboard_body(),
    ("PUT", "/dashboards/default"): lambda ctx: _dashboard_body(),
    ("PUT", "/admin/devices/{device_id}/status"): lambda ctx: {"status": "maintenance"},
    ("PUT", "/admin/organizations/{organization_id}/plan"): lambda ctx: {"plan": "unlimited"},
}

# Example query strings, where a call needs one.
QUERIES: dict[tuple[str, str], Callable[[Ctx], dict]] = {
    ("POST", "/readings"): lambda ctx: {} if ctx.is_device else {
        "device_id": ctx.org.shared["device_id"]},
    ("GET", "/readings/latest"): lambda ctx: {"device_id": ctx.org.shared["device_id"]},
    ("GET", "/readings/aggregate"): lambda ctx: {"device_id": ctx.org.shared["device_id"],
                                                 "interval": "1h", "fn": "avg,count"},
    ("GET", "/readings/export"): lambda ctx: {"device_id": ctx.org.shared["device_id"]},
    ("POST", "/readings/import"): lambda ctx: {"device_id": ctx.fresh_device()},
    ("GET", "/analytics/trends"): lambda ctx: {"key": "temperature"},  # the shared readings'
    ("DELETE", "/readings"): lambda ctx: ctx.device_with_a_reading(),
}


def _example(ctx: Ctx, key: tuple[str, str]) -> tuple[object, dict | None]:
    body = BODIES[key](ctx) if key in BODIES else None
    query = QUERIES[key](ctx) if key in QUERIES else None
    return body, query


def _org_of(api: Api, headers: dict, label: str) -> Org:
    me = api.get("/auth/me", headers)
    assert me.status_code == 200, me.text
    return Org(label=label, id=me.json()["organization"]["id"], owner=headers)


def _populate(world: World, org: Org) -> None:
    org.shared["site_id"] = _new_site(world, org)
    device = world.api.device(org.owner, site_id=org.shared["site_id"])
    org.shared["device_id"] = device["id"]
    org.shared["reading_id"] = _new_reading(world, org)
    reading = world.api.get(f"/readings/{org.shared['reading_id']}", org.owner).json()
    org.shared["sensor_id"] = reading["sensor_id"]  # a sensor with a reading
    org.shared["group_id"] = _new_group(world, org)
    response = world.api.post(f"/groups/{org.shared['group_id']}/devices/{device['id']}",
                              org.owner)
    assert response.status_code == 204, response.text
    org.shared["connector_id"] = _new_connector(world, org)
    org.shared["rule_id"] = _new_rule(world, org)
    org.shared["alert_id"] = _new_alert(world, org)
    org.shared["dashboard_id"] = _new_dashboard(world, org)
    org.shared["user_id"] = _new_user(world, org)
    org.shared["organization_id"] = org.id
    logged = world.api.post(f"/devices/{device['id']}/logs", org.owner,
                            json={"level": "warning", "message": "shared"})
    assert logged.status_code == 201, logged.text


def build_world(api: Api, settings) -> World:
    root = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
    default = _org_of(api, root, "default")
    owner_user, owner_headers = api.signup_tenant_owner(PASSWORD)
    home = Org(label="A", id=owner_user["organization_id"], owner=owner_headers)
    other_user, other_headers = api.signup_tenant_owner(PASSWORD)
    other = Org(label="B", id=other_user["organization_id"], owner=other_headers)
    assert len({default.id, home.id, other.id}) == 3

    world = World(api=api, settings=settings, home=home, default=default, other=other,
                  login_username=owner_user["username"])
    for org in (home, default, other):
        _populate(world, org)

    principals = world.principals
    for role in (VIEWER, MEMBER, ADMIN):
        user, headers = api.add_user(owner_headers, role, password=PASSWORD)
        principals[role] = Principal(role, headers, home, user["id"], user["username"], PASSWORD)
    principals[OWNER] = Principal(OWNER, owner_headers, home, owner_user["id"],
                                  owner_user["username"], PASSWORD)
    root_me = api.get("/auth/me", root).json()
    assert root_me["is_superadmin"] and root_me["role"] == OWNER
    principals[SUPERADMIN] = Principal(SUPERADMIN, root, default, root_me["id"], ADMIN_USERNAME,
                                       ADMIN_PASSWORD)

    device = api.device(owner_headers)
    principals["device"] = Principal("device", device_key(device["api_key"]), home,
                                     device_id=device["id"])
    attacker = api.device(other_headers)
    world.attacker_device = Principal("device", device_key(attacker["api_key"]), other,
                                      device_id=attacker["id"])

    principals["anonymous"] = Principal("anonymous", {}, home)
    expired = world.expired(owner_headers)  # the owner's, an hour old
    principals["expired"] = Principal("expired", bearer(expired), home, owner_user["id"])
    gone, gone_headers = api.add_user(owner_headers, MEMBER, password=PASSWORD)
    assert api.get("/auth/me", gone_headers).status_code == 200  # the token did work
    response = api.patch(f"/users/{gone['id']}/deactivate", owner_headers)
    assert response.status_code == 200, response.text
    principals["deactivated"] = Principal("deactivated", gone_headers, home, gone["id"],
                                          gone["username"], PASSWORD)
    return world


@pytest.fixture(scope="module")
def world(databases) -> World:
    settings = make_settings(databases.new(), signup_mode="tenant")
    # (env "test": cheap Argon2 parameters keep the ~150 logins and user creations fast)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield build_world(Api(client), settings)


def _assert_refusal(response, status: int) -> None:
    assert response.status_code == status, (
        f"expected {status}, got {response.status_code}: {response.text}")
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status
    assert problem["code"] == {401: "unauthorized", 403: "forbidden"}[status], problem
    if status == 401:
        assert response.headers.get("www-authenticate", "").startswith("Bearer")


def _assert_not_found(response) -> None:
    assert response.status_code == 404, (
        f"another organization's object must be a 404, got {response.status_code}: "
        f"{response.text}")
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "not_found"


def _assert_lists_nothing(response) -> None:
    """A 200 list or export that holds no row (another organization's were filtered out)."""
    media = response.headers.get("content-type", "").split(";")[0]
    if media == "text/csv":
        assert len(response.text.splitlines()) <= 1, response.text  # the header at most
    elif media == "application/x-ndjson":
        assert not response.text.strip(), response.text
    elif "items" in response.json():
        assert response.json()["items"] == [], "another organization's objects were listed"


def _assert_refers_to_nothing(response, key: tuple[str, str], name: str) -> None:
    """A write naming another organization's object: refused, or (filters) selecting nothing."""
    if key in SELECTS_NOTHING and response.status_code < 300:
        assert response.json()[SELECTS_NOTHING[key]] == 0, response.text
        return
    assert response.status_code in (404, 422), (
        f"a reference to another organization's object must be refused, got "
        f"{response.status_code}: {response.text}")
    if response.status_code == 422:  # and because of that reference, not another mistake
        errors = response.json().get("errors", [])
        assert any(name in map(str, error["loc"]) for error in errors), response.text


# --------------------------------------------------------------------------------------------
# The table and the app agree.
# --------------------------------------------------------------------------------------------


def test_expected_table_names_exactly_the_apps_routes():
    missing = _by_path(set(ROUTES) - set(EXPECTED))
    stale = _by_path(set(EXPECTED) - set(ROUTES))
    assert not missing, ("routes the app serves but EXPECTED does not list (say who may call "
                         f"them): {missing}")
    assert not stale, f"EXPECTED lists routes the app does not serve: {stale}"
    for table in (BODIES, QUERIES, PREPARE, CONSUMES_CREDENTIALS, SELECTS_NOTHING):
        assert not set(table) - set(ROUTES), f"stale entries: {_by_path(set(table) - set(ROUTES))}"
    for key, rule in EXPECTED.items():
        assert rule.minimum in RANK or rule.minimum == PUBLIC, key
        if rule.self_minimum:
            assert "user_id" in path_params(key[1]), key


def test_route_table_is_read_from_the_app():
    # Guard against the reader silently finding nothing (e.g. after a FastAPI upgrade).
    assert len(ROUTES) >= 50
    assert ("GET", "/health") in ROUTES and ("POST", "/auth/login") in ROUTES
    assert ROUTES[("DELETE", "/sites/{site_id}")] == "/api/v1/sites/{site_id}"


# --------------------------------------------------------------------------------------------
# Family 1: roles.
# --------------------------------------------------------------------------------------------

PRINCIPALS = [VIEWER, MEMBER, ADMIN, OWNER, SUPERADMIN, "device", "anonymous", "expired",
              "deactivated"]
USER_PRINCIPALS = [VIEWER, MEMBER, ADMIN, OWNER, SUPERADMIN, "deactivated"]
UNAUTHENTICATED = {"anonymous", "expired", "deactivated"}


def expected_outcome(rule: Rule, principal: str, variant: str) -> int | str:
    """``"allowed"``, or the refusal status (401 or 403)."""
    if rule.minimum == PUBLIC:
        return "allowed"
    if principal in UNAUTHENTICATED:
        return 401
    if principal == "device":
        return "allowed" if rule.device else 403
    minimum = rule.self_minimum if variant == "self" else rule.minimum
    return "allowed" if RANK[principal] >= RANK[minimum] else 403


def _role_cases():
    cases = []
    for (method, template) in _by_path(ROUTES):
        rule = EXPECTED.get((method, template))
        if rule is None:
            cases.append(pytest.param(method, template, None, "other",
                                      id=f"unlisted-{method} {template}"))
            continue
        for principal in PRINCIPALS:
            cases.append(pytest.param(method, template, principal, "other",
                                      id=f"{principal}-{method} {template}"))
        if rule.self_minimum:
            for principal in USER_PRINCIPALS:
                cases.append(pytest.param(method, template, principal, "self",
                                          id=f"{principal}-{method} {template} (self)"))
    return cases


@pytest.mark.parametrize("method, template, principal_name, variant", _role_cases())
def test_roles(world: World, method, template, principal_name, variant):
    key = (method, template)
    if principal_name is None:
        pytest.fail(f"{method} {template} is not in EXPECTED: say who may call it")
    rule = EXPECTED[key]
    principal = world.principals[principal_name]
    expected = expected_outcome(rule, principal_name, variant)
    # Superadmin routes act across organizations: aim them at org A's objects. Everything else
    # acts in the caller's own organization (the superadmin's is the default one).
    org = world.home if rule.minimum == SUPERADMIN else principal.org

    objects: dict[str, tuple[Org, object]] = {}
    for param in path_params(template):
        if variant == "self" and param == "user_id":
            objects[param] = (org, principal.user_id)
        elif principal_name == "device" and rule.device and param == "device_id":
            objects[param] = (org, principal.device_id)
        else:
            objects[param] = (org, target(world, org, param, fresh=method != "GET"))
    if key in PREPARE:
        PREPARE[key](world, objects)
    # A call that may spend the credentials gets new ones, so a wrongly accepted logout
    # cannot revoke the shared token and turn every later case into a "correct" 401.
    headers = (world.fresh_headers(principal) if key in CONSUMES_CREDENTIALS
               else principal.headers)
    ctx = Ctx(world, org, principal)
    body, query = _example(ctx, key)
    watch = expected != "allowed" and method != "GET"
    before = snapshot(world, objects, ctx.witness) if watch else None
    if watch:
        _assert_present(before)

    response = world.call(method, template, _ids(objects), headers, body, query)
    if key == ("POST", "/auth/password") and response.status_code == 200:
        # Every earlier token of the user ended, the shared ones too (the same dict as the
        # organization's owner headers): carry on with the fresh pair's.
        principal.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    assert response.status_code < 500, response.text
    if expected == "allowed":
        assert response.status_code not in (401, 403), (
            f"{principal_name} should be allowed, got {response.status_code}: {response.text}")
        tolerated_422 = response.status_code == 422 and key not in BODIES
        assert response.status_code < 300 or tolerated_422, (
            f"allowed call did not succeed ({response.status_code}): {response.text}")
    else:
        _assert_refusal(response, expected)
    if watch:
        assert snapshot(world, objects, ctx.witness) == before, (
            "a refused call changed something")


# --------------------------------------------------------------------------------------------
# Family 2: isolation between organizations.
# --------------------------------------------------------------------------------------------


def _isolation_cases():
    cases = []
    for (method, template) in _by_path(ROUTES):
        params = path_params(template)
        if not params:
            continue
        variants = [(param,) for param in params]
        if len(params) > 1:
            variants.append(tuple(params))
        for foreign in variants:
            label = "all" if len(foreign) > 1 else foreign[0]
            cases.append(pytest.param(method, template, foreign, "owner",
                                      id=f"{method} {template} [foreign {label}]"))
        rule = EXPECTED.get((method, template))
        if rule is not None and rule.device and "device_id" in params:
            cases.append(pytest.param(method, template, ("device_id",), "device",
                                      id=f"{method} {template} [foreign device_id, device key]"))
    return cases


@pytest.mark.parametrize("method, template, foreign, attacker", _isolation_cases())
def test_another_organization_gets_404_and_changes_nothing(world: World, method, template,
                                                            foreign, attacker):
    key = (method, template)
    rule = EXPECTED.get(key)
    if rule is None:
        pytest.fail(f"{method} {template} is not in EXPECTED: say who may call it")
    victim, own = world.home, world.other
    objects: dict[str, tuple[Org, object]] = {}
    for param in path_params(template):
        org = victim if param in foreign else own
        objects[param] = (org, target(world, org, param, fresh=method != "GET"))
    if key in PREPARE:
        PREPARE[key](world, objects)
    principal = None if attacker == "owner" else world.attacker_device
    headers = own.owner if principal is None else principal.headers
    ctx = Ctx(world, own, principal)
    body, query = _example(ctx, key)
    before = snapshot(world, objects, ctx.witness)
    _assert_present(before)

    response = world.call(method, template, _ids(objects), headers, body, query)

    if rule.minimum == SUPERADMIN:
        # /admin is cross-organization by design; a non-superadmin is refused outright.
        _assert_refusal(response, 403)
    else:
        _assert_not_found(response)
    assert snapshot(world, objects, ctx.witness) == before, (
        "a call across organizations changed something")


def test_superadmin_admin_routes_do_reach_other_organizations(world: World):
    root = world.principals[SUPERADMIN].headers
    device_id = world.home.shared["device_id"]
    response = world.api.get(f"/admin/devices/{device_id}", root)
    assert response.status_code == 200 and response.json()["organization_id"] == world.home.id
    # ...while the organization's own routes are scoped for him too: org A is not his.
    _assert_not_found(world.api.get(f"/devices/{device_id}", root))


def _device_route_cases():
    return [pytest.param(method, template, id=f"{method} {template}")
            for (method, template) in _by_path(ROUTES)
            if EXPECTED.get((method, template), Rule(PUBLIC)).device
            and "device_id" in path_params(template)]


@pytest.mark.parametrize("method, template", _device_route_cases())
def test_device_key_acts_only_for_its_own_device(world: World, method, template):
    # Another device of the same organization: not found for this key.
    device = world.principals["device"]
    other_id = _new_device(world, world.home)
    objects = {"device_id": (world.home, other_id)}
    for param in path_params(template):  # other ids: the other device's own (e.g. a command)
        objects.setdefault(param, (world.home, target(world, world.home, param, fresh=True)))
    if (method, template) in PREPARE:
        PREPARE[(method, template)](world, objects)
    before = snapshot(world, objects)
    body, query = _example(Ctx(world, world.home, device), (method, template))
    response = world.call(method, template, _ids(objects), device.headers, body, query)
    _assert_not_found(response)
    assert snapshot(world, objects) == before


def test_device_key_as_bearer_is_the_same_principal(world: World):
    device = world.principals["device"]
    key_headers = bearer(device.headers["X-API-Key"])
    beat = world.api.post(f"/devices/{device.device_id}/heartbeat", key_headers, json={})
    assert beat.status_code == 200, beat.text
    _assert_refusal(world.api.get(f"/devices/{device.device_id}", key_headers), 403)
    _assert_refusal(world.api.get("/devices", key_headers), 403)


# Query strings and bodies that name another organization's objects.

def _query_reference_cases():
    cases = []
    for (method, template) in _by_path(ROUTES):
        rule = EXPECTED.get((method, template))
        if rule is None or rule.minimum in (PUBLIC, SUPERADMIN):
            continue
        for name in query_params(method, template):
            if name in FACTORIES:
                cases.append(pytest.param(method, template, name, "owner",
                                          id=f"{method} {template}?{name}=foreign"))
                if rule.device:
                    cases.append(pytest.param(method, template, name, "device",
                                              id=f"{method} {template}?{name}=foreign, "
                                                 "device key"))
    return cases


@pytest.mark.parametrize("method, template, name, attacker", _query_reference_cases())
def test_query_references_to_another_organization_reveal_and_change_nothing(
        world: World, method, template, name, attacker):
    """A list filtered by another organization's id is empty; a write naming one is refused."""
    key = (method, template)
    victim, own = world.home, world.other
    objects = {param: (own, target(world, own, param, fresh=method != "GET"))
               for param in path_params(template)}
    principal = None if attacker == "owner" else world.attacker_device
    headers = own.owner if principal is None else principal.headers
    ctx = Ctx(world, own, principal)
    body, query = _example(ctx, key)
    foreign_id = target(world, victim, name, fresh=False)
    query = {**(query or {}), name: foreign_id}
    witnessed = [*ctx.witness, (name, victim, foreign_id)]
    before = snapshot(world, objects, witnessed)
    _assert_present(before)

    response = world.call(method, template, _ids(objects), headers, body, query)

    assert response.status_code < 500, response.text
    if method == "GET":
        assert response.status_code in (200, 404, 422), response.text
        if response.status_code == 200:
            _assert_lists_nothing(response)
    else:
        _assert_refers_to_nothing(response, key, name)
    assert snapshot(world, objects, witnessed) == before, (
        "a reference across organizations changed something")


def _body_reference_cases():
    cases = []
    for (method, template) in _by_path(ROUTES):
        rule = EXPECTED.get((method, template))
        if method == "GET" or rule is None or rule.minimum in (PUBLIC, SUPERADMIN):
            continue
        for name in sorted(body_properties(method, template)):
            if name in FACTORIES and name not in path_params(template):
                cases.append(pytest.param(method, template, name,
                                          id=f"{method} {template} body {name}=foreign"))
    return cases


@pytest.mark.parametrize("method, template, name", _body_reference_cases())
def test_body_references_to_another_organization_are_refused(world: World, method, template,
                                                             name):
    key = (method, template)
    if key not in BODIES:
        pytest.fail(f"{method} {template} takes {name} in its body: add an example to BODIES")
    victim, own = world.home, world.other
    objects = {param: (own, target(world, own, param, fresh=True))
               for param in path_params(template)}
    ctx = Ctx(world, own, None)
    body, query = _example(ctx, key)
    foreign_id = target(world, victim, name, fresh=False)
    body = {**body, name: foreign_id}
    witnessed = [*ctx.witness, (name, victim, foreign_id)]
    before = snapshot(world, objects, witnessed)
    _assert_present(before)

    response = world.call(method, template, _ids(objects), own.owner, body, query)

    assert response.status_code < 500, response.text
    _assert_refers_to_nothing(response, key, name)
    assert snapshot(world, objects, witnessed) == before, (
        "a reference across organizations changed something")
