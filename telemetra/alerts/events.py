"""What happens to alerts, recorded in the unit of work that changed them (``kit.events``)."""

from dataclasses import dataclass
from typing import Any

from telemetra.kit.events import event


@event("alert.changed")
@dataclass(frozen=True, slots=True)
class AlertChanged:
    """An alert fired, was acknowledged or resolved. ``alert`` is its public shape (API.md,
    Alerts) in plain JSON types, as live sockets send it."""

    change: str  # fired | acknowledged | resolved
    organization_id: int
    device_id: int
    alert: dict[str, Any]
