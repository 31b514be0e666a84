"""Guess a new sensor's type and unit from its key (``temperature`` -> temperature, °C)."""

import re

# normalised key or prefix -> (type, usual unit)
WELL_KNOWN: dict[str, tuple[str, str | None]] = {
    "temperature": ("temperature", "°C"), "temp": ("temperature", "°C"),
    "humidity": ("humidity", "%"), "hum": ("humidity", "%"), "rh": ("humidity", "%"),
    "pressure": ("pressure", "hPa"), "co2": ("co2", "ppm"), "tvoc": ("tvoc", "ppb"),
    "pm25": ("pm25", "µg/m³"), "pm10": ("pm10", "µg/m³"), "pm1": ("pm1", "µg/m³"),
    "voltage": ("voltage", "V"), "current": ("current", "A"), "power": ("power", "W"),
    "energy": ("energy", "kWh"), "battery": ("battery", "%"), "light": ("light", "lx"),
    "illuminance": ("light", "lx"), "lux": ("light", "lx"), "noise": ("noise", "dB"),
    "sound": ("noise", "dB"), "rssi": ("rssi", "dBm"), "moisture": ("moisture", "%"),
    "flow": ("flow", "l/min"), "level": ("level", "%"), "speed": ("speed", "m/s"),
    "wind": ("wind", "m/s"), "rain": ("rain", "mm"), "weight": ("weight", "kg"),
    "distance": ("distance", "m"), "frequency": ("frequency", "Hz"),
}
_NON_ALNUM = re.compile(r"[^a-z0-9]")


def guess(key: str) -> tuple[str, str | None]:
    """The type and unit of a sensor created for ``key``; ``("other", None)`` when unknown."""
    name = _NON_ALNUM.sub("", key.lower())
    if name in WELL_KNOWN:
        return WELL_KNOWN[name]
    for prefix in sorted(WELL_KNOWN, key=len, reverse=True):
        if len(prefix) >= 4 and name.startswith(prefix):
            return WELL_KNOWN[prefix]
    return "other", None
