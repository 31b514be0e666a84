"""The dashboard grid: the saved layout is drawn, tiles are moved (mouse or keyboard),
resized and added, and what is saved is there after a reload."""

import re
import time

from playwright.sync_api import expect


def _tiles(api) -> dict:
    layout = api.get("/dashboards/default").json()["layout"]
    return {tile["id"]: tile for tile in layout["tiles"]}


def _saved(page, api, check, timeout: float = 10) -> dict:
    """The saved tiles, once ``check(tiles)`` holds (a save is debounced, then sent). It
    waits with the page, not time.sleep: the page's requests pass through this process's
    route handler (tests/web/conftest.py), which runs only while Playwright is called."""
    deadline = time.monotonic() + timeout
    while True:
        tiles = _tiles(api)
        if check(tiles) or time.monotonic() > deadline:
            return tiles
        page.wait_for_timeout(100)


def _place(page, tile_id: str) -> tuple[int, int, int, int]:
    el = page.locator(f'[data-tile="{tile_id}"]')
    return tuple(int(el.get_attribute(f"gs-{a}") or 0) for a in "xywh")


def test_a_moved_tile_is_saved_and_drawn_after_a_reload(logged_in, api, server):
    device = api.device("dash-device")
    api.send(device, {"temperature": 22.5, "humidity": 51})
    saved = api.put("/dashboards/default", json={"name": "Plant", "layout": {"tiles": [
        {"id": "temp", "title": "Temperature", "key": "temperature", "device_id": device["id"],
         "chart": "line", "range": "-1h", "layout": {"x": 0, "y": 0, "w": 4, "h": 3}},
        {"id": "hum", "title": "Humidity now", "key": "humidity", "device_id": device["id"],
         "chart": "stat", "layout": {"x": 4, "y": 0, "w": 3, "h": 2}},
    ]}})
    assert saved.status_code == 200, saved.text
    logged_in.goto(server.base + "/dashboard")
    expect(logged_in.get_by_role("heading", name="Plant")).to_be_visible()
    expect(logged_in.locator('[data-tile-value="hum"]')).to_have_text(re.compile(r"^51\b"))
    expect(logged_in.locator('[data-tile="temp"] .uplot')).to_be_visible()
    assert _place(logged_in, "hum") == (4, 0, 3, 2)

    # Drag "Humidity now" by its title bar to the right, about four columns.
    head = logged_in.locator('[data-tile="hum"] .tile-head h2')
    box = head.bounding_box()
    grid = logged_in.locator(".grid-stack").bounding_box()
    column = grid["width"] / 12
    logged_in.mouse.move(box["x"] + 10, box["y"] + box["height"] / 2)
    logged_in.mouse.down()
    for step in range(1, 11):
        logged_in.mouse.move(box["x"] + 10 + step * column * 0.4, box["y"] + box["height"] / 2)
    logged_in.mouse.up()
    expect(logged_in.locator("#save-state")).to_have_text("Saved")
    moved = _place(logged_in, "hum")
    assert moved[0] >= 6, moved
    saved = _saved(logged_in, api, lambda tiles: tiles["hum"]["layout"]["x"] == moved[0])
    assert saved["hum"]["layout"]["x"] == moved[0]

    logged_in.reload()
    expect(logged_in.locator('[data-tile-value="hum"]')).to_have_text(re.compile(r"^51\b"))
    assert _place(logged_in, "hum") == moved
    assert _place(logged_in, "temp") == (0, 0, 4, 3)


def test_tiles_are_added_and_resized_from_the_keyboard(logged_in, api, server):
    device = api.device("dash-keyboard")
    api.send(device, {"pressure": 1013})
    assert api.put("/dashboards/default", json={"layout": {"tiles": []}}).status_code == 200
    logged_in.goto(server.base + "/dashboard")
    form = logged_in.locator("form", has_text="Add a tile")
    form.get_by_label("Title").fill("Pressure")
    form.get_by_label("Device or site").select_option(label="dash-keyboard")
    expect(form.get_by_label("Sensor key")).to_have_value("pressure")
    form.get_by_label("Chart").select_option("stat")
    form.get_by_role("button", name="Add tile").click()
    tile = logged_in.locator(".grid-stack-item", has_text="Pressure")
    expect(tile.locator("[data-tile-value]")).to_have_text(re.compile(r"^1013\b"))
    [saved] = _saved(logged_in, api, lambda t: len(t) == 1).values()
    assert (saved["title"], saved["key"], saved["device_id"], saved["chart"]) == (
        "Pressure", "pressure", device["id"], "stat")
    width = saved["layout"]["w"]

    tile.get_by_role("button", name="Wider: Pressure").focus()
    logged_in.keyboard.press("Enter")
    logged_in.keyboard.press("Enter")
    tile.get_by_role("button", name="Move right: Pressure").press("Enter")

    def placed(tiles):
        return [(t["layout"]["w"], t["layout"]["x"]) for t in tiles.values()]

    [saved] = _saved(logged_in, api, lambda tiles: placed(tiles) == [(width + 2, 1)]).values()
    assert (saved["layout"]["w"], saved["layout"]["x"]) == (width + 2, 1)

    tile.get_by_role("button", name="Remove tile Pressure").click()
    assert _saved(logged_in, api, lambda t: t == {}) == {}
    expect(logged_in.locator("#save-state")).to_have_text("Saved")
