"""Browser tests: Playwright's Python API driving Debian's chromium (never a downloaded
browser: `make system-deps` installs the package) against a real `telemetra serve` on SQLite.

Every page a test opens is watched: a request for anything but this machine is refused and
recorded, and the test fails if there was one (the UI must work offline, DESIGN.md).
"""

import os
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from telemetra.web.endpoints import STATIC
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME
from tests.server import API, Server

CHROMIUM = Path(os.environ.get("TELEMETRA_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _required() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium"
        if _required():
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not (STATIC / "index.html").is_file():
        pytest.fail("the web UI is not built: `make web` (make test builds it first)")
    folder = tmp_path_factory.mktemp("web-server")
    server = Server(f"sqlite:///{folder / 'ui.db'}", folder / "server.log")
    server.start()
    yield server
    server.stop()


class Api:
    """The server's API as the superadmin, for setting up what a page should show."""

    def __init__(self, server: Server) -> None:
        self.base = server.base + API
        self.client = httpx.Client(base_url=self.base, headers=server.login(), timeout=10)

    def __getattr__(self, name):
        return getattr(self.client, name)

    def device(self, name: str, **fields) -> dict:
        response = self.client.post("/devices", json={"name": name, **fields})
        response.raise_for_status()
        return response.json()

    def send(self, device: dict, body) -> None:
        response = httpx.post(self.base + "/readings", json=body,
                              headers={"X-API-Key": device["api_key"]}, timeout=10)
        assert response.status_code == 202, response.text


@pytest.fixture(scope="module")
def api(server):
    client = Api(server)
    yield client
    client.client.close()


class Outside:
    """The requests a page tried to send off this machine (each refused)."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.local = 0

    def handle(self, route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if host in LOCAL_HOSTS:
            self.local += 1
            route.continue_()
        else:
            self.urls.append(route.request.url)
            route.abort()


@pytest.fixture
def outside():
    return Outside()


def _context(browser, outside: Outside, **options):
    context = browser.new_context(accept_downloads=True, **options)
    context.route("**/*", outside.handle)
    context.set_default_timeout(15_000)
    return context


@pytest.fixture
def page(browser, server, outside):
    context = _context(browser, outside, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not outside.urls, f"requests left the machine: {outside.urls}"
    assert not errors, f"the page's scripts failed: {errors}"


@pytest.fixture
def phone(browser, server, outside):
    context = _context(browser, outside, viewport={"width": 390, "height": 844},
                       is_mobile=True, has_touch=True, device_scale_factor=1)
    page = context.new_page()
    yield page
    context.close()
    assert not outside.urls, f"requests left the machine: {outside.urls}"


def log_in(page, server, username=ADMIN_USERNAME, password=ADMIN_PASSWORD, path="/login"):
    page.goto(server.base + path)
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


@pytest.fixture
def logged_in(page, server):
    log_in(page, server)
    page.wait_for_url("**/devices")
    page.get_by_role("heading", name="Fleet").wait_for()
    return page


def wait_live(page) -> None:
    """Until the page's socket is open and all its subscriptions confirmed (web/src/live.js)."""
    from playwright.sync_api import expect

    expect(page.locator("html")).to_have_attribute("data-live", "on", timeout=15_000)
