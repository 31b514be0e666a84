"""Offline and small screens: nothing is fetched from elsewhere (the docs included), every
page fits a 390 px phone without sideways scrolling, and controls are labelled and reachable
from the keyboard."""

import re

from playwright.sync_api import expect

from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME
from tests.web.conftest import log_in

PAGES = ["/devices", "/dashboard", "/sites", "/alerts", "/readings"]
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
    .filter((el) => el.type !== 'hidden' && !el.labels?.length && !el.getAttribute('aria-label'))
    .map((el) => el.outerHTML)"""


def _device_with_data(api):
    device = api.device("offline-device", location="Basement")
    api.send(device, {"temperature": 20, "humidity": 40})
    return device


def test_the_watch_catches_a_request_off_the_machine(page, server, outside):
    """The guard the other tests rely on: a request elsewhere is refused and recorded. (On
    Telemetra's own pages the Content-Security-Policy already stops one in the browser; a
    blank page has none.)"""
    page.goto(server.base + "/login")
    assert outside.local > 0
    page.goto("about:blank")
    page.evaluate("fetch('http://203.0.113.7/probe.js').catch(() => null)")
    page.wait_for_timeout(300)
    assert outside.urls == ["http://203.0.113.7/probe.js"]
    outside.urls.clear()


def test_no_page_sends_a_request_off_the_machine(logged_in, server, api, outside):
    device = _device_with_data(api)
    for path in PAGES + [f"/devices/{device['id']}"]:
        logged_in.goto(server.base + path)
        logged_in.wait_for_load_state("networkidle")
        assert logged_in.locator("h1").first.is_visible()
        assert logged_in.evaluate(UNLABELLED) == [], path
    assert outside.urls == []
    # The fonts are the system's: no @font-face anywhere.
    assert logged_in.evaluate("document.fonts.size") == 0


def test_the_api_docs_render_offline(page, server, outside):
    page.goto(server.base + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Telemetra")
    expect(page.locator(".opblock").first).to_be_visible()
    page.goto(server.base + "/redoc")
    expect(page.locator("h1", has_text="Telemetra")).to_be_visible(timeout=30_000)  # a big page
    assert outside.urls == []


def test_every_page_fits_a_phone(phone, server, api):
    device = _device_with_data(api)
    log_in(phone, server)
    phone.wait_for_url("**/devices")
    for path in PAGES + [f"/devices/{device['id']}", "/login"]:
        phone.goto(server.base + path)
        phone.wait_for_load_state("networkidle")
        width = phone.evaluate("[document.documentElement.scrollWidth, "
                               "document.documentElement.clientWidth]")
        assert width[0] <= width[1] == 390, f"{path} scrolls sideways: {width}"
    # The navigation folds into a menu button.
    phone.goto(server.base + "/devices")
    nav = phone.get_by_role("navigation", name="Main")
    expect(nav).to_be_hidden()
    phone.get_by_role("button", name="Menu").click()
    expect(nav).to_be_visible()
    nav.get_by_role("link", name="Alerts").click()
    expect(phone.get_by_role("heading", name="Alerts")).to_be_visible()
    expect(nav).to_be_hidden()


def test_logging_in_and_moving_around_by_keyboard(page, server):
    page.goto(server.base + "/login")
    expect(page.get_by_label("Username or email")).to_be_focused()
    page.keyboard.type(ADMIN_USERNAME)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/devices")
    expect(page.locator("main")).to_be_focused()  # a new page moves the focus to its content
    page.reload()
    page.get_by_role("heading", name="Fleet").wait_for()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Sites":
            break
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/sites$"))
    expect(page.get_by_role("heading", name="Sites")).to_be_visible()
