"""Fuzz every operation of the app's own OpenAPI schema with Schemathesis, on both backends.

Each operation gets a bounded, reproducible Hypothesis run (derandomized, no example
database) plus Schemathesis' deterministic example/coverage cases, and every response must
pass all of Schemathesis' checks: no 5xx, only documented status codes, documented content
types and headers, bodies matching their schema, bad input rejected, and so on.

How it is wired:

- The app is built from ``make_settings`` on a fresh migrated database of the module's
  backend. Its lifespan (engine, migrations, the configured superadmin) runs once, inside
  Schemathesis' own ASGI portal: entering ``schemathesis.python.asgi.get_client(app)``
  starts it and it stays up until ``shutdown_lifespans()`` at teardown; every case and every
  setup request goes through that portal. A ``TestClient`` is not used on purpose: it would
  run a second lifespan on another event loop and leave ``app.state.engine`` bound to the
  wrong one.
- Every case is sent as the superadmin (``Authorization: Bearer <token>``), so the fuzzer
  gets past authentication; fuzzed credentials (``X-API-Key``, which the app checks before
  the bearer token) are dropped. Schemathesis' own ``ignored_auth`` check cannot probe this
  (the bearer scheme is OAuth2, which it does not model as a header), so the first accepted
  case of each secured operation is replayed without credentials, with a bogus token and
  with a bogus device key: each must be a 401.
- A site, a device (in the site), a sensor (on the device), a group (holding the device),
  a connector (for the device) and a second user exist before the run; a
  ``flatmap_path_parameters`` hook makes about half of the generated path ids name them, so
  operations reach real objects and not only 404s. Deleting cases may remove them: they are
  recreated after every DELETE.

Nothing is excluded. Operations that could end the admin's session are made harmless:
- ``POST /auth/logout`` revokes the access token it is sent with, so its cases use a
  session of their own, replaced by a fresh login after each successful logout;
- ``POST /auth/password`` needs the current password, which the fuzzer cannot produce
  (it answers 403 and changes nothing); after every case under /auth and /users (and at
  the end) the admin's token must still work, so the run fails loudly rather than silently
  fuzzing against 401s;
- deactivating, deleting or demoting oneself is refused by the app (403), which is
  exactly what the fuzzer should see.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.python import asgi

from telemetra.app import create_app
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, make_settings
from tests.helpers import API, unique

# Schemathesis has no NDJSON serializer: those upload cases are skipped (CSV and multipart
# uploads of the same operation are fuzzed). Aliasing it to text/plain would make any
# "wrong type" negative case a valid NDJSON string on the wire.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Skipped test cases with unsupported payload media types:UserWarning")

MAX_EXAMPLES = 10  # Hypothesis examples per operation (plus Schemathesis' coverage cases)

LOGOUT = ("POST", f"{API}/auth/logout")
# Operations that could end the superadmin's session (password change, deactivating or
# deleting users): after each of their cases the session must still work.
SESSION_PATHS = (f"{API}/auth/", f"{API}/users")


class Target:
    """The running app, the superadmin's token and the objects path ids should hit."""

    def __init__(self, app) -> None:
        self.app = app
        self.http = asgi.get_client(app)  # a requests.Session over ASGI, same portal
        self.token = self.login()
        self._logout_token: str | None = None
        self.auth_checked: set[str] = set()
        self.ids: dict[str, list[int]] = {}
        self.seed()

    def login(self) -> str:
        response = self.http.post(f"{API}/auth/login",
                                  json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def logout_token(self) -> str:
        """A session of its own for POST /auth/logout, replaced once a logout revoked it."""
        if self._logout_token is None:
            self._logout_token = self.login()
        return self._logout_token

    def spent_logout_token(self) -> None:
        self._logout_token = None

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def _create(self, path: str, body: dict) -> int:
        response = self.http.post(API + path, json=body, headers=self.headers())
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def _exists(self, path: str) -> bool:
        response = self.http.get(API + path, headers=self.headers())
        assert response.status_code in (200, 404), response.text
        return response.status_code == 200

    def seed(self) -> None:
        """Make sure one site, device, sensor, group and connector (and a second user) exist."""
        ids = self.ids
        if not ids.get("site_id") or not self._exists(f"/sites/{ids['site_id'][0]}"):
            ids["site_id"] = [self._create("/sites", {"name": unique("site")})]
        if not ids.get("device_id") or not self._exists(f"/devices/{ids['device_id'][0]}"):
            ids["device_id"] = [self._create("/devices", {"name": unique("device"),
                                                          "site_id": ids["site_id"][0]})]
        if not ids.get("sensor_id") or not self._exists(f"/sensors/{ids['sensor_id'][0]}"):
            ids["sensor_id"] = [self._create("/sensors", {"device_id": ids["device_id"][0],
                                                          "key": unique("temperature")})]
        if not ids.get("group_id") or not self._exists(f"/groups/{ids['group_id'][0]}"):
            ids["group_id"] = [self._create("/groups", {"name": unique("group")})]
        self.http.post(f"{API}/groups/{ids['group_id'][0]}/devices/{ids['device_id'][0]}",
                       headers=self.headers())
        if not ids.get("connector_id") or not self._exists(
                f"/connectors/{ids['connector_id'][0]}"):
            ids["connector_id"] = [self._create("/connectors", {
                "name": unique("connector"), "kind": "mqtt_topic",
                "device_id": ids["device_id"][0], "topic": "fuzz/data"})]
        if not ids.get("user_id") or not self._exists(f"/users/{ids['user_id'][-1]}"):
            member = self._create("/users", {"username": unique("member"),
                                             "password": "password-123", "role": "member"})
            ids["user_id"] = [1, member]  # 1: the superadmin itself
        ids["organization_id"] = [1]

    def assert_auth_enforced(self, case, response) -> None:
        """Replay the first accepted request of a secured operation with bad credentials."""
        if case.method.upper() != case.operation.method.upper():
            return  # a probe with an undeclared method (answered 405)
        label = case.operation.label
        operation = schema.raw_schema["paths"][case.operation.path][case.operation.method]
        if (not operation.get("security") or label in self.auth_checked
                or not 200 <= response.status_code < 300):
            return
        self.auth_checked.add(label)
        sent = response.request
        kept = {name: value for name, value in sent.headers.items()
                if name.lower() not in ("authorization", "x-api-key")}
        for credentials in ({}, {"Authorization": "Bearer not-a-token"},
                            {"X-API-Key": "tdk_not-a-device-key"}):
            replay = self.http.request(sent.method, sent.url, data=sent.body,
                                       headers={**kept, **credentials})
            assert replay.status_code == 401, (
                f"{label} with credentials {credentials or 'none'} answered "
                f"{replay.status_code}, not 401: {replay.text[:300]}")

    def assert_session_alive(self) -> None:
        response = self.http.get(f"{API}/auth/me", headers=self.headers())
        assert response.status_code == 200, (
            f"the fuzzer ended the superadmin's session: {response.status_code} {response.text}")


# The document fuzzed is the app's own, built without a database (create_app does not touch
# one); the module's ``target`` serves it, and the test checks it is the same document.
# (``schemathesis.pytest.from_fixture`` would load it per backend, but its lazy runner is
# not compatible with pytest 9's node ids.)
CONFIG = schemathesis.Config.from_dict({"checks": {
    # A schema-valid request may still be refused with 422 when a rule the schema cannot
    # express says no: a body's site_id/device_id must name an existing object, valid_min
    # <= valid_max, offset and skip must agree, timezones are IANA names, email addresses
    # must be deliverable. Anything else (400, 405, 415) is still a failure (and a 5xx is
    # one for the not_a_server_error check).
    "positive_data_acceptance": {
        "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "5xx"]},
}})
schema = schemathesis.openapi.from_dict(
    create_app(make_settings("sqlite:///never-opened.db")).openapi(), config=CONFIG)
_targets: list[Target] = []  # the module's running target, for the hook below


@pytest.fixture(scope="module")
def target(databases) -> Target:
    app = create_app(make_settings(databases.new()))
    with asgi.get_client(app):  # starts the lifespan in Schemathesis' portal, kept until teardown
        pass
    running = Target(app)
    served = running.http.get("/openapi.json")
    assert served.status_code == 200 and served.json() == schema.raw_schema
    _targets[:] = [running]
    yield running
    running.assert_session_alive()
    _targets.clear()
    asgi.shutdown_lifespans()


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    # About half the ids name the seeded objects; the rest keep the fuzzed ids. Only integers
    # are swapped: anything else is a deliberately invalid (negative-mode) value to keep.
    ids = _targets[0].ids if _targets else {}
    if not path_parameters:
        return st.just(path_parameters)
    choices = {}
    for name, value in path_parameters.items():
        if ids.get(name) and isinstance(value, int) and not isinstance(value, bool):
            choices[name] = st.one_of(st.just(value), st.sampled_from(ids[name]))
        else:
            choices[name] = st.just(value)
    return st.fixed_dictionaries(choices)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_schema(case, target: Target):
    for name in list(case.headers or {}):
        if name.lower() in ("x-api-key", "authorization"):
            del case.headers[name]  # fuzzed credentials: the run authenticates as the admin
    logout = (case.method.upper(), case.path) == LOGOUT
    token = target.logout_token() if logout else target.token
    response = case.call_and_validate(app=target.app, headers=target.headers(token))
    target.assert_auth_enforced(case, response)
    if logout and response.status_code == 204:
        target.spent_logout_token()
    if case.method.upper() == "DELETE":
        target.seed()
    if case.path.startswith(SESSION_PATHS) and not logout:
        target.assert_session_alive()
