"""Plausible sensor values for simulated devices: a daily cycle plus noise that drifts (an
AR(1) process, so consecutive readings look like a real sensor's, not like dice)."""

import math
import random
from dataclasses import dataclass, field
from datetime import datetime

DAY_SECONDS = 86_400


def _local_hour(ts: datetime) -> float:
    local = ts.astimezone()
    return local.hour + local.minute / 60 + local.second / 3600


@dataclass
class Drift:
    """Noise that wanders around zero: each step keeps ``keep`` of the last value."""

    sigma: float
    keep: float = 0.9
    value: float = 0.0

    def step(self, rng: random.Random) -> float:
        self.value = self.keep * self.value + rng.gauss(0, self.sigma)
        return self.value


@dataclass
class Climate:
    """An indoor environment sensor: temperature peaking mid-afternoon, humidity moving
    against it, barometric pressure drifting slowly, daylight on a bell from 6:00 to 18:00
    (local time) with lights on during office hours. Each device gets its own offsets from
    ``seed``, so a fleet does not move in lockstep.

    ::

        climate = Climate(seed=1)
        climate.sample(datetime.now(UTC))
        # e.g. {'temperature': 22.13, 'humidity': 47.2, 'pressure': 1012.8, 'light': 512.0}
    """

    seed: int = 0
    rng: random.Random = field(init=False)
    base_temperature: float = field(init=False)
    base_pressure: float = field(init=False)
    _temperature: Drift = field(default_factory=lambda: Drift(0.12, 0.95))
    _humidity: Drift = field(default_factory=lambda: Drift(0.4, 0.9))
    _pressure: Drift = field(default_factory=lambda: Drift(0.08, 0.995))
    _light: Drift = field(default_factory=lambda: Drift(8.0, 0.7))

    UNITS = {"temperature": "°C", "humidity": "%", "pressure": "hPa", "light": "lx"}

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.base_temperature = 20.5 + self.rng.uniform(-1.5, 2.5)
        self.base_pressure = 1013.0 + self.rng.uniform(-6, 6)

    def sample(self, ts: datetime) -> dict[str, float]:
        hour = _local_hour(ts)
        daily = math.sin(2 * math.pi * (hour - 9) / 24)  # lowest ~03:00, highest ~15:00
        temperature = self.base_temperature + 3.0 * daily + self._temperature.step(self.rng)
        humidity = 50 - 2.2 * (temperature - self.base_temperature) + self._humidity.step(
            self.rng)
        pressure = self.base_pressure + self._pressure.step(self.rng) * 3
        daylight = max(0.0, math.sin(math.pi * (hour - 6) / 12)) * 450
        lamps = 300.0 if 8 <= hour < 18 and ts.astimezone().weekday() < 5 else 0.0
        light = max(0.0, daylight + lamps + self._light.step(self.rng))
        return {"temperature": round(temperature, 2),
                "humidity": round(min(100.0, max(0.0, humidity)), 1),
                "pressure": round(pressure, 1), "light": round(light, 0)}
