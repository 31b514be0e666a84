"""What happens to sensors, published after the commit (``kit.events``)."""

from dataclasses import dataclass

from telemetra.kit.events import event


@event("sensor.changed")
@dataclass(frozen=True, slots=True)
class SensorChanged:
    """A sensor was created, changed (its valid range, status, unit...) or deleted: what the
    ingestion path holds about its device's sensors is stale. Answered once every process
    applied it (a new valid range holds everywhere from its answer on)."""

    answer_when_everywhere = True

    sensor_id: int
    device_id: int
    organization_id: int
    deleted: bool = False
