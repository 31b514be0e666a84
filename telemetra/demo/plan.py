"""What ``telemetra demo`` makes: four sites, their devices and sensors, alert rules, commands
and a dashboard, each found again by its name on a second run.

The figures a run promises (``DemoPlan.figures``) come from this description alone, so a test
can check them without loading a month.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

STEP = timedelta(minutes=5)  # the readings' grid
DEFAULT_DAYS = 30
# The share of the window, oldest first, whose readings end up archived, then validated;
# the rest stay pending (as a month reviewed up to last week would be).
ARCHIVED_SHARE = 0.3
VALIDATED_SHARE = 0.75


@dataclass(frozen=True, slots=True)
class SensorSpec:
    key: str
    unit: str
    valid_min: float
    valid_max: float
    profile: str  # the shape of its values (``telemetra.demo.signals``)
    name: str | None = None

    @property
    def type(self) -> str:
        return self.key


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    name: str
    device_type: str
    location: str
    sensors: tuple[SensorSpec, ...]
    firmware_version: str = "2.4.1"
    status: str = "active"


@dataclass(frozen=True, slots=True)
class SiteSpec:
    name: str
    description: str
    location: str
    latitude: float
    longitude: float
    timezone: str
    devices: tuple[DeviceSpec, ...]


@dataclass(frozen=True, slots=True)
class RuleSpec:
    name: str
    key: str
    condition: str
    threshold: float
    severity: str
    threshold_high: float | None = None
    site: str | None = None  # scope: a site's name, or a device's (not both)
    device: str | None = None


@dataclass(frozen=True, slots=True)
class CommandSpec:
    device: str
    name: str
    params: dict
    outcome: str | None = None  # succeeded, failed, or None: left queued
    result: dict | None = None


@dataclass(frozen=True, slots=True)
class Incident:
    """Something that happened to one sensor: its values are ``level`` (with a step halfway
    there on either side) from ``at`` (a share of the window; None: the last ``minutes`` of
    it, still going on at the end) for ``minutes``. The rules are set so that each incident
    opens one alert."""

    device: str
    key: str
    at: float | None
    minutes: int
    level: float
    what: str


def _temperature(profile: str, low: float = -40, high: float = 85) -> SensorSpec:
    return SensorSpec("temperature", "°C", low, high, profile)


def _humidity(profile: str) -> SensorSpec:
    return SensorSpec("humidity", "%", 0, 100, profile)


PRESSURE = SensorSpec("pressure", "hPa", 870, 1085, "weather")


def _motion(profile: str) -> SensorSpec:
    return SensorSpec("motion", "events", 0, 1000, profile)


def _light(profile: str) -> SensorSpec:
    return SensorSpec("light", "lx", 0, 120_000, profile)


def _sound(profile: str) -> SensorSpec:
    return SensorSpec("sound", "dB", 20, 140, profile)


SITES: tuple[SiteSpec, ...] = (
    SiteSpec("Lyon production floor", "Assembly hall with lines 1 and 2 and the paint booth; "
             "two shifts, 06:00-22:00 on weekdays", "Rue de l'Industrie 12, Lyon", 45.7485,
             4.8467, "Europe/Paris", (
                 DeviceSpec("Line 1 environment", "env-multisensor", "Line 1, station 4", (
                     _temperature("shift_floor"), _humidity("indoor"), _sound("shift_floor"))),
                 DeviceSpec("Line 2 environment", "env-multisensor", "Line 2, station 2", (
                     _temperature("shift_floor"), _humidity("indoor"), _sound("shift_floor"))),
                 DeviceSpec("Paint booth monitor", "booth-controller", "Paint booth", (
                     _temperature("booth"), _humidity("booth"), PRESSURE)),
                 DeviceSpec("Loading bay motion", "pir-light", "Loading bay", (
                     _motion("shift_floor"), _light("shift_floor"))),
             )),
    SiteSpec("Rotterdam warehouse", "Distribution centre with a cold room and four aisles",
             "Waalhaven 40, Rotterdam", 51.8936, 4.4214, "Europe/Amsterdam", (
                 DeviceSpec("Cold room monitor", "cold-chain-logger", "Cold room", (
                     _temperature("cold_room", -30, 30), _humidity("cold_room"))),
                 DeviceSpec("Aisle A climate", "env-multisensor", "Aisle A", (
                     _temperature("warehouse"), _humidity("indoor"), _light("warehouse"))),
                 DeviceSpec("Dock door motion", "pir-light", "Dock door 3", (
                     _motion("warehouse"), _light("outdoor")), status="maintenance"),
             )),
    SiteSpec("Berlin office building", "Headquarters: open space, meeting rooms, reception "
             "and a weather station on the roof", "Friedrichstraße 120, Berlin", 52.5208,
             13.3878, "Europe/Berlin", (
                 DeviceSpec("Open space climate", "env-multisensor", "2nd floor, open space", (
                     _temperature("office"), _humidity("indoor"), _light("office"),
                     _sound("office"), _motion("office"))),
                 DeviceSpec("Meeting room Atlas", "room-sensor", "3rd floor, room 3.12", (
                     _temperature("office"), _humidity("indoor"), _motion("office"))),
                 DeviceSpec("Reception", "room-sensor", "Ground floor", (
                     _temperature("office"), _light("office"), _motion("office"))),
                 DeviceSpec("Roof weather station", "weather-station", "Roof", (
                     _temperature("outdoor"), _humidity("outdoor"), PRESSURE)),
             )),
    SiteSpec("Frankfurt data center", "Colocation hall 2: racks A1 to B6 on raised floor",
             "Hanauer Landstraße 300, Frankfurt", 50.1155, 8.7195, "Europe/Berlin", (
                 DeviceSpec("Rack A1 cold aisle", "rack-sensor", "Row A, rack 1, front", (
                     _temperature("cold_aisle"), _humidity("data_center"))),
                 DeviceSpec("Rack A1 hot aisle", "rack-sensor", "Row A, rack 1, rear", (
                     _temperature("hot_aisle"),)),
                 DeviceSpec("Rack B4 cold aisle", "rack-sensor", "Row B, rack 4, front", (
                     _temperature("cold_aisle"), _humidity("data_center"))),
                 DeviceSpec("UPS room", "room-sensor", "UPS and battery room", (
                     _temperature("ups_room"), _sound("ups_room"))),
                 DeviceSpec("Hall pressure", "env-multisensor", "Hall 2, by the CRAC units", (
                     PRESSURE, _humidity("data_center"))),
             )),
)

RULES: tuple[RuleSpec, ...] = (
    RuleSpec("Hot aisle above 40 °C", "temperature", "gt", 40, "critical",
             device="Rack A1 hot aisle"),
    RuleSpec("Cold room above 8 °C", "temperature", "gt", 8, "critical",
             device="Cold room monitor"),
    RuleSpec("Production floor louder than 85 dB", "sound", "gt", 85, "warning",
             site="Lyon production floor"),
    RuleSpec("UPS room above 30 °C", "temperature", "gt", 30, "warning", device="UPS room"),
    RuleSpec("Office humidity outside 30-65 %", "humidity", "outside", 30, "info",
             threshold_high=65, device="Open space climate"),
)

INCIDENTS: tuple[Incident, ...] = (
    Incident("Line 2 environment", "sound", 0.2, 30, 91, "a press run without its hood"),
    Incident("Rack A1 hot aisle", "temperature", 0.4, 90, 43, "a CRAC unit tripped"),
    Incident("Cold room monitor", "temperature", 0.65, 45, 10.5, "the door was left open"),
    Incident("UPS room", "temperature", None, 40, 31.5, "a UPS fan failed (still going on)"),
)

COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("Line 1 environment", "set_interval", {"seconds": 60}, "succeeded",
                {"interval": 60}),
    CommandSpec("Rack A1 hot aisle", "reboot", {}, "succeeded", {"uptime_seconds": 4}),
    CommandSpec("Cold room monitor", "calibrate", {"sensor": "humidity"}, "failed",
                {"error": "reference probe not found"}),
    CommandSpec("Meeting room Atlas", "set_interval", {"seconds": 300}),
)

DASHBOARD_NAME = "Demo overview"
DASHBOARD_DESCRIPTION = "Made by telemetra demo: a few charts of each site"


def dashboard_layout(device_ids: dict[str, int], site_ids: dict[str, int]) -> dict:
    """The demo dashboard's layout (API.md, Dashboards), naming the demo's devices and
    sites by their ids."""
    tiles = [
        {"title": "Hot aisle temperature", "key": "temperature",
         "device_id": device_ids["Rack A1 hot aisle"], "chart": "line", "range": "-24h"},
        {"title": "Cold room", "key": "temperature",
         "device_id": device_ids["Cold room monitor"], "chart": "gauge", "range": "-1h"},
        {"title": "Production floor noise", "key": "sound",
         "site_id": site_ids["Lyon production floor"], "chart": "area", "range": "-7d",
         "interval": "1h", "fn": "max"},
        {"title": "Office temperature", "key": "temperature",
         "site_id": site_ids["Berlin office building"], "chart": "line", "range": "-7d",
         "interval": "1h", "fn": "avg"},
        {"title": "Outdoor pressure", "key": "pressure",
         "device_id": device_ids["Roof weather station"], "chart": "line", "range": "-30d",
         "interval": "6h", "fn": "avg"},
        {"title": "UPS room", "key": "temperature", "device_id": device_ids["UPS room"],
         "chart": "stat", "range": "-1h"},
    ]
    for index, tile in enumerate(tiles):
        tile["id"] = f"t{index + 1}"
        tile["layout"] = {"i": tile["id"], "x": (index % 2) * 6, "y": (index // 2) * 4,
                          "w": 6, "h": 4}
    return {"tiles": tiles}


def floor_to_step(moment: datetime) -> datetime:
    """``moment`` (aware) down to the readings' grid."""
    moment = moment.astimezone(UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + STEP * ((moment - midnight) // STEP)


@dataclass(frozen=True, slots=True)
class DemoPlan:
    """One run: the organization, and the window of history (``days`` up to ``end``, on the
    five-minute grid: the last reading is at ``end`` floored to the grid)."""

    organization: str
    end: datetime
    days: int = DEFAULT_DAYS
    sites: tuple[SiteSpec, ...] = field(default=SITES)

    @property
    def last(self) -> datetime:
        return floor_to_step(self.end)

    @property
    def first(self) -> datetime:
        return self.last - timedelta(days=self.days) + STEP

    @property
    def steps(self) -> int:
        return (self.last - self.first) // STEP + 1

    def at(self, share: float) -> datetime:
        """The grid time at ``share`` of the window (0: the first reading, 1: the last)."""
        return self.first + STEP * round(share * (self.steps - 1))

    @property
    def devices(self) -> list[tuple[SiteSpec, DeviceSpec]]:
        return [(site, device) for site in self.sites for device in site.devices]

    def days_covered(self) -> list[datetime]:
        """The UTC midnights of the days the window touches, oldest first."""
        day = self.first.replace(hour=0, minute=0, second=0, microsecond=0)
        days = []
        while day <= self.last:
            days.append(day)
            day += timedelta(days=1)
        return days

    def figures(self) -> dict:
        """What a run makes (the organization's demo part): the same on every run."""
        sensors = sum(len(device.sensors) for _, device in self.devices)
        return {"sites": len(self.sites), "devices": len(self.devices), "sensors": sensors,
                "readings": sensors * self.steps, "alert_rules": len(RULES),
                "commands": len(COMMANDS), "dashboards": 1}
