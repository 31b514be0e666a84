"""``telemetra demo``: what it promises, and that running it twice duplicates nothing.

- The default plan (no run): four sites of the four kinds, 16 devices, the six sensor kinds,
  30 days on the five-minute grid, rules, commands; the values depend on the time, not on the
  window, and each incident crosses its rule's threshold once.
- Two days run twice, on SQLite and PostgreSQL: the figures promised hold (sites, devices,
  sensors, every reading of the window, pending, validated and archived ones, invalid ones,
  rules, commands, the dashboard, the incidents' alerts), and the second run makes nothing and
  stores nothing (all its readings are duplicates), seen in the database and over the API; a
  run an hour later adds that hour's readings only.
- The command itself: its summary, another organization, a bad ``--end``.
"""

import asyncio
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from telemetra.app import create_app
from telemetra.db.engine import create_engine
from telemetra.db.tables import (
    alert_rules,
    commands,
    dashboards,
    devices,
    organizations,
    sensors,
    sites,
)
from telemetra.demo.cli import run_demo
from telemetra.demo.plan import COMMANDS, DASHBOARD_NAME, INCIDENTS, RULES, STEP, DemoPlan
from telemetra.demo.signals import day_readings
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, make_settings
from tests.helpers import Api

END = datetime(2026, 6, 15, 9, 37, tzinfo=UTC)  # off the grid: the last reading is at 09:35
DAYS = 2


def test_the_default_plan_is_a_month_of_four_sites():
    plan = DemoPlan("Default", END)
    assert plan.days == 30 and plan.last == datetime(2026, 6, 15, 9, 35, tzinfo=UTC)
    assert plan.steps == 30 * 288 and plan.first == plan.last - timedelta(days=30) + STEP
    figures = plan.figures()
    assert figures == {"sites": 4, "devices": 16, "sensors": 41, "readings": 41 * 30 * 288,
                       "alert_rules": len(RULES), "commands": len(COMMANDS), "dashboards": 1}
    names = " ".join(site.name for site in plan.sites)
    for kind in ("production floor", "warehouse", "office building", "data center"):
        assert kind in names
    kinds = {sensor.key for _, device in plan.devices for sensor in device.sensors}
    assert kinds == {"temperature", "humidity", "pressure", "motion", "light", "sound"}
    # every UTC day the window touches: 31 (it starts and ends mid-day)
    assert len(plan.days_covered()) == 31


def test_a_value_depends_on_its_time_not_on_the_window():
    site, device = DemoPlan("Default", END).devices[0]
    day = datetime(2026, 6, 14, tzinfo=UTC)
    month = day_readings(DemoPlan("Default", END), site, device, day)
    other = day_readings(DemoPlan("Default", END + timedelta(days=3), days=7), site, device, day)
    assert len(month) == len(device.sensors) * 288
    assert [(r.key, r.ts, r.value, r.tags) for r in month] == [
        (r.key, r.ts, r.value, r.tags) for r in other]


def test_each_incident_crosses_its_rule_once():
    plan = DemoPlan("Default", END, days=DAYS)
    by_device = {device.name: (site, device) for site, device in plan.devices}
    for incident in INCIDENTS:
        rule = next(r for r in RULES if r.device == incident.device
                    or (r.site and r.site == by_device[incident.device][0].name
                        and r.key == incident.key))
        values = []
        for day in plan.days_covered():
            values += [r.value for r in day_readings(plan, *by_device[incident.device], day)
                       if r.key == incident.key and r.tags is None and r.value < 300]
        above = [v > rule.threshold for v in values]
        crossings = sum(1 for a, b in zip(above, above[1:]) if b and not a)
        assert crossings == 1, (incident.what, crossings)
        assert above[-1] is (incident.at is None)  # only the last one is still going on


async def _counts(database_url: str) -> dict:
    """Rows of each kind in the whole database, and names held twice in an organization."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            out = {}
            for table in (organizations, sites, devices, sensors, alert_rules, commands,
                          dashboards):
                out[table.name] = await conn.scalar(select(func.count()).select_from(table))
            for table in (sites, devices, alert_rules):
                out[f"{table.name} twice"] = (await conn.execute(
                    select(table.c.name).group_by(table.c.organization_id, table.c.name)
                    .having(func.count() > 1))).all()
            return out
    finally:
        await engine.dispose()


def test_twice_makes_the_promised_figures_once(database_url):
    settings = make_settings(database_url)
    plan = DemoPlan(settings.default_organization, END, DAYS)
    promised = plan.figures()

    first, details = asyncio.run(run_demo(settings, None, DAYS, END))
    made = details["made"]
    assert made.user == ADMIN_USERNAME  # the configured superadmin: its organization
    assert made.created == {"sites": 4, "devices": 16, "sensors": 41, "alert_rules": 5,
                            "commands": 4, "dashboards": 1}
    for kind in ("sites", "devices", "sensors", "alert_rules", "commands", "dashboards"):
        assert first[kind] == promised[kind], kind
    assert first["readings"] == promised["readings"] == made.accepted
    assert made.rejected == 0 and made.duplicates == 0
    assert (first["first"], first["last"]) == (plan.first, plan.last)
    assert all(n > 1000 for n in first["by_status"].values()), first["by_status"]
    assert 0 < first["invalid"] < first["readings"] / 100
    # the incidents: three over (resolved when the values came back), one still going on
    assert first["alerts"] == {"active": 1, "resolved": len(INCIDENTS) - 1}
    counts = asyncio.run(_counts(database_url))

    second, details = asyncio.run(run_demo(settings, None, DAYS, END))
    made = details["made"]
    assert made.created == {} and made.accepted == 0
    assert made.duplicates == promised["readings"]
    assert second == first
    assert asyncio.run(_counts(database_url)) == counts
    assert counts["sites twice"] == counts["devices twice"] == counts["alert_rules twice"] == []

    later, details = asyncio.run(run_demo(settings, None, DAYS, END + timedelta(hours=1)))
    made, new = details["made"], 12 * promised["sensors"]  # an hour later: 12 more steps
    assert made.created == {} and made.accepted == new
    assert made.duplicates == promised["readings"] - new
    assert later["readings"] == promised["readings"] + new
    # the incident going on at the old end was over by the new one, which has its own
    assert later["alerts"] == {"active": 1, "resolved": len(INCIDENTS)}
    assert asyncio.run(_counts(database_url)) == counts

    with TestClient(create_app(settings)) as client:  # what the admin sees
        api = Api(client)
        root = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        assert api.get("/sites", root).json()["total"] == 4
        fleet = api.get("/devices", root, params={"limit": 100}).json()
        assert fleet["total"] == 16
        assert {d["status"] for d in fleet["items"]} == {"active", "maintenance"}
        assert all(d["last_seen"] is not None for d in fleet["items"])
        assert api.get("/alerts", root).json()["total"] == len(INCIDENTS) + 1
        assert api.get("/alert-rules", root).json()["total"] == len(RULES)
        hot = next(d for d in fleet["items"] if d["name"] == "Rack A1 hot aisle")
        sent = api.get(f"/devices/{hot['id']}/commands", root).json()["items"]
        assert [(c["name"], c["status"]) for c in sent] == [("reboot", "succeeded")]
        shared = api.get("/dashboards", root).json()
        assert [d["name"] for d in shared["items"]] == [DASHBOARD_NAME]
        own = api.get("/dashboards/default", root).json()  # where the web UI opens
        assert own["id"] is not None and own["layout"] == shared["items"][0]["layout"]
        tiles = own["layout"]["tiles"]
        assert len(tiles) == 6 and {t.get("device_id") for t in tiles} & {hot["id"]}


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRA_")}
    env.update({"TELEMETRA_DATABASE_URL": database_url, "TELEMETRA_ENV": "test",
                "TELEMETRA_LOG_LEVEL": "WARNING", "TELEMETRA_ADMIN_USERNAME": ADMIN_USERNAME,
                "TELEMETRA_ADMIN_PASSWORD": ADMIN_PASSWORD, "COLUMNS": "200"})
    return subprocess.run([sys.executable, "-m", "telemetra", "demo", *args], env=env,
                          text=True, capture_output=True, timeout=120)


def test_the_command_prints_what_it_made_and_where_to_log_in(tmp_path, sqlite_template):
    shutil.copy(sqlite_template, tmp_path / "demo.db")  # migrated already: quicker
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    done = _cli(url, "--days", "1", "--end", "2026-06-15T09:37:00Z")
    assert done.returncode == 0, done.stderr
    assert "288 readings" not in done.stdout  # sanity: the figures are the whole demo's
    assert "11,808" in done.stdout  # 41 sensors x 288 readings
    assert "archived" in done.stdout and "invalid" in done.stdout
    assert f"as '{ADMIN_USERNAME}'" in done.stdout

    other = _cli(url, "--days", "1", "--end", "2026-06-15T09:37:00Z", "--organization", "Acme")
    assert other.returncode == 0, other.stderr
    assert "organization 'Acme'" in other.stdout and "no owner or admin" in other.stdout

    future = _cli(url, "--end", (datetime.now(UTC) + timedelta(days=1)).isoformat())
    assert future.returncode == 2 and "future" in future.stderr
    bad = _cli(url, "--end", "yesterday-ish")
    assert bad.returncode == 2 and "--end" in bad.stderr
