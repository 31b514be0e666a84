"""Save PNGs of the web UI's main pages (``make screenshots``), for the README.

A throwaway ``telemetra serve`` on a temporary SQLite file, filled by ``telemetra demo`` (a
week, to be quick) or, where that command is missing, with a little sample data of its own;
then Debian's chromium, headless, logs in and shoots each page at 1280x800 (and the device
page at a phone's 390 px). Usage: ``python web/screenshots.py [OUTPUT_DIR]``.
"""

import math
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("TELEMETRA_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
USERNAME, PASSWORD = "admin", "screenshots-admin-password"
PAGES = [("fleet", "/devices"), ("dashboard", "/dashboard"), ("alerts", "/alerts"),
         ("sites", "/sites"), ("review", "/readings")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_by_api(base: str, headers: dict) -> None:
    """A site, three devices, a day of readings, an alert and a dashboard, where `telemetra
    demo` is not there."""
    client = httpx.Client(base_url=base + "/api/v1", headers=headers, timeout=30)
    site = client.post("/sites", json={"name": "Greenhouse"}).json()
    client.post("/alert-rules", json={"name": "Too warm", "key": "temperature",
                                      "condition": "gt", "threshold": 26, "severity": "warning"})
    now = time.time()
    devices = []
    for n, name in enumerate(["greenhouse-north", "greenhouse-south", "seed-store"]):
        device = client.post("/devices", json={"name": name, "site_id": site["id"],
                                               "device_type": "esp32"}).json()
        devices.append(device)
        day = [{"ts": now - 86400 + i * 300, "values": {
            "temperature": 21 + n + 4 * math.sin(i / 288 * 2 * math.pi) + random.random(),
            "humidity": 60 - 8 * math.sin(i / 288 * 2 * math.pi) + 2 * random.random()}}
            for i in range(288)]
        for body in (day, {"temperature": 27.5 if n == 0 else 22.0, "humidity": 58}):
            httpx.post(base + "/api/v1/readings", json=body, timeout=30,
                       headers={"X-API-Key": device["api_key"]}).raise_for_status()
        client.post(f"/devices/{device['id']}/heartbeat", json={})
    first = devices[0]["id"]
    client.put("/dashboards/default", json={"name": "Greenhouse", "layout": {"tiles": [
        {"id": "t", "title": "North temperature", "key": "temperature", "device_id": first,
         "chart": "line", "range": "-24h", "layout": {"x": 0, "y": 0, "w": 8, "h": 3}},
        {"id": "h", "title": "North humidity", "key": "humidity", "device_id": first,
         "chart": "stat", "layout": {"x": 8, "y": 0, "w": 4, "h": 3}},
        {"id": "s", "title": "Site temperature", "key": "temperature", "site_id": site["id"],
         "chart": "area", "range": "-24h", "layout": {"x": 0, "y": 3, "w": 12, "h": 3}}]}})


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="telemetra-screenshots-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TELEMETRA_DATABASE_URL": f"sqlite:///{folder / 'demo.db'}",
           "TELEMETRA_ADMIN_USERNAME": USERNAME, "TELEMETRA_ADMIN_PASSWORD": PASSWORD,
           "TELEMETRA_LOG_LEVEL": "WARNING", "TELEMETRA_ENV": "development"}
    telemetra = [sys.executable, "-m", "telemetra"]
    demo = subprocess.run([*telemetra, "demo", "--days", "7"], env=env, capture_output=True,
                          text=True)
    server = subprocess.Popen([*telemetra, "serve", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=open(folder / "server.log", "wb"),
                              stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        tokens = httpx.post(base + "/api/v1/auth/login",
                            json={"username": USERNAME, "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        if demo.returncode != 0:
            print("screenshots: no `telemetra demo` here; a little sample data instead")
            seed_by_api(base, headers)
        devices = httpx.get(base + "/api/v1/devices", headers=headers).json()["items"]
        pages = PAGES + ([("device", f"/devices/{devices[0]['id']}")] if devices else [])
        shoot(base, out, pages, devices)
    finally:
        server.terminate()
        server.wait(20)


def shoot(base: str, out: Path, pages, devices) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        for width, height, suffix, wanted in [(1280, 800, "", None), (390, 844, "-phone",
                                                                        {"device"})]:
            context = browser.new_context(viewport={"width": width, "height": height},
                                          color_scheme="light")
            context.route("**/*", lambda route: route.continue_()
                          if route.request.url.startswith(base) else route.abort())
            page = context.new_page()
            page.goto(base + "/login")
            page.get_by_label("Username or email").fill(USERNAME)
            if not suffix:
                page.screenshot(path=out / "login.png")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(re.compile(r".*/devices$"))
            for name, path in pages:
                if wanted and name not in wanted:
                    continue
                page.goto(base + path)
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(500)
                page.screenshot(path=out / f"{name}{suffix}.png")
                print(f"screenshots: {out / f'{name}{suffix}.png'}")
            context.close()
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
