"""The demo's values: daily and weekly cycles in each site's local time, a slow weather swing,
seeded noise, rare sensor glitches (invalid: outside the valid range, or tagged ``suspect``)
and the plan's incidents.

A value depends only on the device, the key and the time, never on the window asked for: the
noise of a day is drawn from a generator seeded with (device, key, UTC date), so a second run
produces the very same readings, which the ingestion path then finds stored already.
"""

import math
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from telemetra.demo.plan import INCIDENTS, STEP, DemoPlan, DeviceSpec, Incident, SiteSpec
from telemetra.ingest.decode import Reading

GLITCH_CHANCE = 1 / 500  # a reading's chance of being a sensor glitch (out of range)
SUSPECT_CHANCE = 1 / 700  # ... of being tagged "suspect" by the device (invalid by its tag)
SUSPECT_TAG = "suspect"
# What a glitching sensor of each kind reports: outside its valid range.
GLITCH_VALUES = {"temperature": 327.67, "humidity": -1.0, "pressure": 0.0, "motion": 65535.0,
                 "light": 655350.0, "sound": 0.0}


class Moment:
    """One grid time as the profiles see it, worked out once for a site's devices: the site's
    local hour and weekday, what goes on there then, and the weather (a slow swing between
    -1.5 and 1.5 shared by every site)."""

    __slots__ = ("hour", "weekday", "weather", "shift", "occupied", "daylight", "afternoon",
                 "load")

    def __init__(self, ts: datetime, offset: timedelta) -> None:
        local = ts + offset
        hour = self.hour = local.hour + local.minute / 60
        workday = (weekday := local.weekday()) < 5
        self.weekday = weekday
        days = ts.timestamp() / 86_400
        self.weather = math.sin(2 * math.pi * days / 5.3) + 0.5 * math.sin(
            2 * math.pi * days / 2.1 + 1.0)
        # the production floor's two shifts, 06:00-22:00 on weekdays
        self.shift = 1.0 if workday and 6 <= hour < 22 else 0.0
        # the office on weekdays: full 09:00-17:00, half an hour either side
        self.occupied = (0.0 if not workday or not 7 <= hour < 19
                         else 1.0 if 9 <= hour < 17 else 0.5)
        # 0 at night, 1 at noon (a December day: 08:00-16:00)
        self.daylight = math.sin(math.pi * (hour - 8) / 8) if 8 < hour < 16 else 0.0
        # -1 to 1 over the day, highest at 15:00
        self.afternoon = math.cos(2 * math.pi * (hour - 15) / 24)
        # a data center's load, 0 to 1, highest mid-afternoon
        self.load = 0.5 + 0.5 * self.afternoon


Profile = Callable[[Moment, random.Random], float]


def _poisson(rng: random.Random, rate: float) -> float:
    """Events in five minutes at ``rate`` on average (Knuth's method: the rates are small)."""
    limit, count, product = math.exp(-rate), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return float(count)


PROFILES: dict[tuple[str, str], Profile] = {
    ("temperature", "shift_floor"): lambda m, r: 20.5 + 3 * m.shift + 0.6 * m.weather
    + r.gauss(0, 0.25),
    ("temperature", "booth"): lambda m, r: 23 + m.shift + r.gauss(0, 0.2),
    ("temperature", "cold_room"): lambda m, r: 3.8 + (
        r.uniform(0, 1.2) if m.shift and r.random() < 0.2 else 0) + r.gauss(0, 0.15),
    ("temperature", "warehouse"): lambda m, r: 13 + 2 * m.afternoon + 1.5 * m.weather
    + r.gauss(0, 0.3),
    ("temperature", "office"): lambda m, r: 18.5 + 3 * m.occupied + 0.4 * m.weather
    + r.gauss(0, 0.2),
    ("temperature", "outdoor"): lambda m, r: 4 + 4 * m.afternoon + 4 * m.weather
    + r.gauss(0, 0.3),
    ("temperature", "cold_aisle"): lambda m, r: 22 + 0.3 * m.load + r.gauss(0, 0.15),
    ("temperature", "hot_aisle"): lambda m, r: 34 + 2 * m.load + r.gauss(0, 0.3),
    ("temperature", "ups_room"): lambda m, r: 24 + 0.5 * m.load + r.gauss(0, 0.2),
    ("humidity", "indoor"): lambda m, r: 45 + 4 * m.weather - 2 * max(m.occupied, m.shift)
    + r.gauss(0, 0.6),
    ("humidity", "booth"): lambda m, r: 55 + 3 * m.shift + r.gauss(0, 0.5),
    ("humidity", "cold_room"): lambda m, r: min(99.0, 85 + 2 * m.weather + r.gauss(0, 0.8)),
    ("humidity", "outdoor"): lambda m, r: min(100.0, 78 - 10 * m.afternoon
                                              + 6 * m.weather + r.gauss(0, 1.5)),
    ("humidity", "data_center"): lambda m, r: 45 + 1.5 * m.weather + r.gauss(0, 0.4),
    ("pressure", "weather"): lambda m, r: 1013 + 9 * m.weather + r.gauss(0, 0.15),
    ("motion", "shift_floor"): lambda m, r: _poisson(r, 14 * m.shift + 0.3),
    ("motion", "warehouse"): lambda m, r: _poisson(r, 5 * m.shift + 0.2),
    ("motion", "office"): lambda m, r: _poisson(r, 8 * m.occupied + 0.05),
    ("light", "shift_floor"): lambda m, r: max(0.0, 40 + 650 * m.shift + r.gauss(0, 10)),
    ("light", "warehouse"): lambda m, r: max(0.0, 15 + 320 * m.shift + r.gauss(0, 5)),
    ("light", "office"): lambda m, r: max(0.0, 480 * (m.occupied > 0) + 500 * m.daylight
                                          + r.gauss(0, 15)),
    ("light", "outdoor"): lambda m, r: max(0.0, 0.5 + 18_000 * m.daylight
                                           * (0.6 + 0.25 * m.weather) + r.gauss(0, 50)),
    ("sound", "shift_floor"): lambda m, r: 52 + 22 * m.shift + r.gauss(0, 1.5),
    ("sound", "office"): lambda m, r: 36 + 16 * m.occupied + r.gauss(0, 2),
    ("sound", "ups_room"): lambda m, r: 62 + r.gauss(0, 0.8),
}


def incident_span(plan: DemoPlan, incident: Incident) -> tuple[datetime, datetime]:
    """The grid times an incident runs through, first and last."""
    length = STEP * (incident.minutes // 5 - 1)
    if incident.at is None:
        return plan.last - length, plan.last
    start = plan.at(incident.at)
    return start, min(start + length, plan.last)


def _incident_level(incident: Incident, spans: tuple[datetime, datetime], ts: datetime,
                    normal: float, rng: random.Random) -> float | None:
    """The incident's value at ``ts`` (its first and last readings half way there, unless it
    is still going on), or None outside it."""
    first, last = spans
    if not first <= ts <= last:
        return None
    halfway = (normal + incident.level) / 2
    if ts == first or (ts == last and incident.at is not None):
        return halfway
    return incident.level + rng.gauss(0, 0.3)


@lru_cache(maxsize=8)
def _moments(timezone: str, start: datetime, stop: datetime) -> tuple[list, list]:
    """The grid times from ``start`` to ``stop`` (one UTC day at most) and their moments in
    ``timezone``: the same for every device of a site."""
    offset = ZoneInfo(timezone).utcoffset(start.replace(hour=12, minute=0))
    times = [start + STEP * i for i in range((stop - start) // STEP + 1)]
    return times, [Moment(ts, offset) for ts in times]


def day_readings(plan: DemoPlan, site: SiteSpec, device: DeviceSpec,
                 day: datetime) -> list[Reading]:
    """The device's readings of the UTC day starting at ``day`` that fall in the window."""
    start = max(day, plan.first)
    stop = min(day + timedelta(days=1) - STEP, plan.last)
    if start > stop:
        return []
    times, moments = _moments(site.timezone, start, stop)
    incidents = {i.key: (i, incident_span(plan, i)) for i in INCIDENTS if i.device == device.name}
    readings: list[Reading] = []
    for sensor in device.sensors:
        profile = PROFILES[(sensor.key, sensor.profile)]
        rng = random.Random(f"{device.name}|{sensor.key}|{day.date().isoformat()}")
        incident = incidents.get(sensor.key)
        for ts, moment in zip(times, moments, strict=True):
            value = profile(moment, rng)
            tags = None
            if incident is not None:
                level = _incident_level(*incident, ts, value, rng)
                if level is not None:
                    readings.append(Reading(sensor.key, round(level, 2), ts))
                    continue
            chance = rng.random()
            if chance < GLITCH_CHANCE:
                value = GLITCH_VALUES[sensor.key]
            elif chance < GLITCH_CHANCE + SUSPECT_CHANCE:
                tags = [SUSPECT_TAG]
            readings.append(Reading(sensor.key, round(value, 2), ts, None, tags))
    return readings
