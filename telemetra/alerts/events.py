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


@event("alert.rule_changed")
@dataclass(frozen=True, slots=True)
class AlertRuleChanged:
    """An alert rule was created, changed or deleted: every process's cached rules of the
    organization are stale."""

    organization_id: int
    rule_id: int


@event("alert.episode_changed")
@dataclass(frozen=True, slots=True)
class EpisodeChanged:
    """What a rule's episode (``s<sensor_id>`` or ``d<device_id>``) now is: ``clear``,
    ``pending`` (holding, not yet for ``for_seconds``) or ``open`` (an alert not resolved).
    Every process keeps these in memory, so evaluation touches the database only when a
    reading changes one."""

    organization_id: int
    rule_id: int
    episode: str
    state: str
