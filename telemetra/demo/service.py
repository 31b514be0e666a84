"""Filling an organization with the demo (``telemetra.demo.plan``), through the services and
the ingestion path the API uses. Each piece is looked up by name first and made only when
missing; readings are idempotent by (sensor, time) in the writer. Never commits by hand:
each step is its own unit of work.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.alerts.rules import create_rule
from telemetra.alerts.schemas import AlertRuleCreate
from telemetra.auth.principals import AuthUser
from telemetra.auth.roles import Role
from telemetra.commands.schemas import CommandCreate
from telemetra.commands.service import create_command, record_result
from telemetra.dashboards.schemas import DashboardCreate, DefaultDashboardReplace, Layout
from telemetra.dashboards.service import create_dashboard, get_default, replace_default
from telemetra.db.tables import (
    alert_rules,
    alerts,
    commands,
    dashboards,
    devices,
    readings,
    sensors,
    sites,
    users,
)
from telemetra.demo.plan import (
    ARCHIVED_SHARE,
    COMMANDS,
    DASHBOARD_DESCRIPTION,
    DASHBOARD_NAME,
    RULES,
    VALIDATED_SHARE,
    DemoPlan,
    dashboard_layout,
)
from telemetra.demo.signals import day_readings
from telemetra.devices.schemas import DeviceCreate
from telemetra.devices.service import create_device, get_device, touch
from telemetra.ingest.ingest import IMPORT, Ingestor, Target
from telemetra.kit.crypto import SecretBox
from telemetra.kit.db import write_transaction
from telemetra.kit.events import EventBus
from telemetra.orgs.service import ensure_organization
from telemetra.readings import flags as F
from telemetra.readings.flags import ReviewStatus
from telemetra.readings.query import ReadingFilter
from telemetra.readings.review import review
from telemetra.sensors.schemas import SensorCreate
from telemetra.sensors.service import create_sensor
from telemetra.sites.schemas import SiteCreate
from telemetra.sites.service import create_site

Advance = Callable[[int], None]


@dataclass
class Made:
    """What a run found in place and what it made, by kind."""

    organization_id: int = 0
    user: str | None = None  # who the commands and the dashboard are of
    site_ids: dict[str, int] = field(default_factory=dict)
    device_ids: dict[str, int] = field(default_factory=dict)
    created: dict[str, int] = field(default_factory=dict)
    found: dict[str, int] = field(default_factory=dict)
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    archived: int = 0
    validated: int = 0
    dashboard: str = ""

    def count(self, kind: str, created: bool) -> None:
        into = self.created if created else self.found
        into[kind] = into.get(kind, 0) + 1


async def _demo_user(conn, organization_id: int, preferred: str | None) -> tuple[int, str] | None:
    """The user the demo acts as: ``preferred`` (the configured superadmin) if in the
    organization, else its first owner or admin; None if it has neither."""
    rank = case((users.c.username == (preferred or ""), 0), (users.c.role == Role.owner.value, 1),
                else_=2)
    row = (await conn.execute(
        select(users.c.id, users.c.username)
        .where(users.c.organization_id == organization_id, users.c.is_active.is_(True),
               users.c.role.in_([Role.owner.value, Role.admin.value])
               | (users.c.username == (preferred or "")))
        .order_by(rank, users.c.id).limit(1))).first()
    return (row.id, row.username) if row else None


async def set_up(engine: AsyncEngine, bus: EventBus, plan: DemoPlan, box: SecretBox,
                 preferred_user: str | None) -> tuple[Made, int | None]:
    """The organization, sites, devices, sensors and alert rules (rules before readings, so
    the history's incidents open alerts). Returns what was made, and the demo user's id."""
    made = Made()
    async with write_transaction(engine, bus) as conn:
        made.organization_id = organization_id = await ensure_organization(
            conn, plan.organization)
        user = await _demo_user(conn, organization_id, preferred_user)
        user_id, made.user = user if user else (None, None)
        for site in plan.sites:
            site_id = await conn.scalar(select(sites.c.id).where(
                sites.c.organization_id == organization_id, sites.c.name == site.name))
            made.count("sites", site_id is None)
            if site_id is None:
                site_id = (await create_site(conn, organization_id, SiteCreate(
                    name=site.name, description=site.description, location=site.location,
                    latitude=site.latitude, longitude=site.longitude,
                    timezone=site.timezone)))["id"]
            made.site_ids[site.name] = site_id
            for device in site.devices:
                device_id = await conn.scalar(select(devices.c.id).where(
                    devices.c.organization_id == organization_id, devices.c.site_id == site_id,
                    devices.c.name == device.name).order_by(devices.c.id).limit(1))
                made.count("devices", device_id is None)
                if device_id is None:  # its key is not kept: the demo sends for it itself
                    device_id = (await create_device(conn, organization_id, user_id, DeviceCreate(
                        name=device.name, device_type=device.device_type, site_id=site_id,
                        location=device.location, firmware_version=device.firmware_version,
                        status=device.status, metadata={"demo": True})))["id"]
                made.device_ids[device.name] = device_id
                have = set((await conn.scalars(select(sensors.c.key).where(
                    sensors.c.device_id == device_id))).all())
                for sensor in device.sensors:
                    made.count("sensors", sensor.key not in have)
                    if sensor.key not in have:
                        await create_sensor(conn, organization_id, SensorCreate(
                            device_id=device_id, key=sensor.key, type=sensor.type,
                            unit=sensor.unit, name=sensor.name,
                            valid_min=sensor.valid_min, valid_max=sensor.valid_max))
    async with write_transaction(engine, bus) as conn:
        have = set((await conn.scalars(select(alert_rules.c.name).where(
            alert_rules.c.organization_id == organization_id))).all())
        for rule in RULES:
            made.count("alert_rules", rule.name not in have)
            if rule.name in have:
                continue
            await create_rule(conn, organization_id, AlertRuleCreate(
                name=rule.name, key=rule.key, condition=rule.condition,
                threshold=rule.threshold, threshold_high=rule.threshold_high,
                severity=rule.severity,
                site_id=made.site_ids[rule.site] if rule.site else None,
                device_id=made.device_ids[rule.device] if rule.device else None), box)
    return made, user_id


async def load_readings(ingestor: Ingestor, plan: DemoPlan, made: Made,
                        advance: Advance) -> None:
    """The window's readings, a UTC day at a time: each device's day prepared through the
    ingestion path (as an import's lines), the day's devices committed in one write, which
    goes on while the next day is prepared."""
    targets = [(site, device, Target(made.device_ids[device.name], made.organization_id))
               for site, device in plan.devices]

    async def commit(prepared: list) -> None:
        stored = await ingestor.commit(prepared)
        made.accepted += stored.accepted
        made.duplicates += stored.duplicates
        made.rejected += sum(len(p.rejected) for p in prepared)

    writing: asyncio.Task | None = None
    try:
        for day in plan.days_covered():
            prepared = []
            for site, device, target in targets:
                prepared.append(await ingestor.prepare(
                    target, day_readings(plan, site, device, day), IMPORT))
                advance(1)
            if writing is not None:
                await writing
            writing = asyncio.create_task(commit(prepared))
        if writing is not None:
            await writing
    finally:
        if writing is not None and not writing.done():
            writing.cancel()


async def finish(engine: AsyncEngine, bus: EventBus, plan: DemoPlan, made: Made,
                 user_id: int | None) -> None:
    """Devices last seen at the window's end; the older readings reviewed (archived, then
    validated: the invalid ones are left pending); the plan's commands."""
    organization_id = made.organization_id
    archived_until, validated_until = plan.at(ARCHIVED_SHARE), plan.at(VALIDATED_SHARE)
    async with write_transaction(engine, bus) as conn:
        for device_id in made.device_ids.values():
            device = await get_device(conn, organization_id, device_id)
            if device["last_seen"] is None or device["last_seen"] < plan.last:
                await touch(conn, device, plan.last)
            made.archived += await review(conn, ReadingFilter(
                organization_id, device_id=device_id, start=plan.first, end=archived_until,
                include_invalid=True), ReviewStatus.archived)
            made.validated += await review(conn, ReadingFilter(
                organization_id, device_id=device_id, start=archived_until,
                end=validated_until), ReviewStatus.validated)
    async with write_transaction(engine, bus) as conn:
        for spec in COMMANDS:
            device_id = made.device_ids[spec.device]
            found = await conn.scalar(select(commands.c.id).where(
                commands.c.device_id == device_id, commands.c.name == spec.name).limit(1))
            made.count("commands", found is None)
            if found is not None:
                continue
            command = await create_command(conn, organization_id, user_id, device_id,
                                           CommandCreate(name=spec.name, params=spec.params))
            if spec.outcome is not None:
                await record_result(conn, organization_id, device_id, command["id"],
                                    spec.outcome, spec.result)
    made.dashboard = await make_dashboard(engine, bus, made, user_id)


async def make_dashboard(engine: AsyncEngine, bus: EventBus, made: Made,
                         user_id: int | None) -> str:
    """The organization's shared "Demo overview" dashboard (found by name), and the same
    layout as the demo user's own default dashboard if they have not saved one (the web UI
    opens on it); a dashboard someone saved is never changed."""
    layout = Layout.model_validate(dashboard_layout(made.device_ids, made.site_ids))
    organization_id = made.organization_id
    said = []
    async with write_transaction(engine, bus) as conn:
        found = await conn.scalar(select(dashboards.c.id).where(
            dashboards.c.organization_id == organization_id, dashboards.c.user_id.is_(None),
            dashboards.c.name == DASHBOARD_NAME).limit(1))
        made.count("dashboards", found is None)
        if found is None:
            found = (await create_dashboard(conn, organization_id, DashboardCreate(
                name=DASHBOARD_NAME, description=DASHBOARD_DESCRIPTION, layout=layout)))["id"]
        said.append(f"{DASHBOARD_NAME!r} (/api/v1/dashboards/{found})")
        if user_id is not None:
            user = (await conn.execute(select(users).where(users.c.id == user_id))).first()
            principal = AuthUser(user.id, user.organization_id, user.username, Role(user.role),
                                 user.is_superadmin, session_id="")
            if (await get_default(conn, principal))["id"] is None:
                await replace_default(conn, principal, DefaultDashboardReplace(
                    name=DASHBOARD_NAME, layout=layout))
                said.append(f"and {user.username}'s default")
            else:
                said.append(f"({user.username}'s own default left as it was)")
    return " ".join(said)


async def summary(engine: AsyncEngine, made: Made) -> dict:
    """What the organization's demo part holds now (the figures the tests check)."""
    device_ids = list(made.device_ids.values())
    sensor_ids = select(sensors.c.id).where(sensors.c.device_id.in_(device_ids))
    status_bits = readings.c.flags.op("&")(0b110)
    async with engine.connect() as conn:
        counts = (await conn.execute(select(
            func.count(), func.min(readings.c.ts), func.max(readings.c.ts),
            func.sum(case((F.valid_clause(readings.c.flags), 0), else_=1)),
            *[func.sum(case((status_bits == F.pack(True, status), 1), else_=0))
              for status in ReviewStatus])
            .where(readings.c.sensor_id.in_(sensor_ids)))).one()
        alert_counts = dict((await conn.execute(
            select(alerts.c.state, func.count()).where(alerts.c.device_id.in_(device_ids))
            .group_by(alerts.c.state))).all())
        sensor_count = await conn.scalar(select(func.count()).select_from(sensors)
                                         .where(sensors.c.device_id.in_(device_ids)))
        command_count = await conn.scalar(select(func.count()).select_from(commands)
                                          .where(commands.c.device_id.in_(device_ids)))
        rule_count = await conn.scalar(select(func.count()).select_from(alert_rules).where(
            alert_rules.c.organization_id == made.organization_id,
            alert_rules.c.name.in_([rule.name for rule in RULES])))
        dashboard_count = await conn.scalar(select(func.count()).select_from(dashboards).where(
            dashboards.c.organization_id == made.organization_id, dashboards.c.user_id.is_(None),
            dashboards.c.name == DASHBOARD_NAME))
    total, first, last, invalid, *by_status = counts
    return {"sites": len(made.site_ids), "devices": len(device_ids), "sensors": sensor_count,
            "readings": total, "first": first, "last": last, "invalid": invalid or 0,
            "by_status": {status.value: n or 0 for status, n in zip(ReviewStatus, by_status)},
            "alert_rules": rule_count, "alerts": alert_counts, "commands": command_count,
            "dashboards": dashboard_count}
