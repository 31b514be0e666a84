"""Alert rules as evaluation holds them, and what their conditions say about values."""

from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy.engine import RowMapping


@dataclass(frozen=True, slots=True)
class Rule:
    id: int
    organization_id: int
    key: str | None
    condition: str
    threshold: float | None
    threshold_high: float | None
    for_seconds: int
    severity: str
    device_id: int | None
    site_id: int | None
    group_id: int | None

    @classmethod
    def from_row(cls, row: RowMapping) -> "Rule":
        return cls(**{name: row[name] for name in cls.__slots__})

    def covers(self, device: "DeviceInfo") -> bool:
        """Whether the device is in this rule's scope (its device, site, group, or any)."""
        if self.device_id is not None:
            return self.device_id == device.id
        if self.site_id is not None:
            return self.site_id == device.site_id
        if self.group_id is not None:
            return self.group_id in device.group_ids
        return True


class DeviceInfo(NamedTuple):
    id: int
    organization_id: int
    status: str
    site_id: int | None
    group_ids: frozenset[int]


def breaches(rule: Rule, value: float) -> bool:
    """Whether ``value`` meets the rule's (reading) condition."""
    t, high, condition = rule.threshold, rule.threshold_high, rule.condition
    if condition == "gt":
        return value > t
    if condition == "gte":
        return value >= t
    if condition == "lt":
        return value < t
    if condition == "lte":
        return value <= t
    if condition == "eq":
        return value == t
    if condition == "ne":
        return value != t
    if condition == "outside":
        return value < t or value > high
    if condition == "inside":
        return t <= value <= high
    return False


def may_change(rule: Rule, holding: bool, low: float, high: float) -> bool:
    """Whether values between ``low`` and ``high`` (a batch's, for one sensor) may change
    the episode: reach the condition when it does not hold, or leave it when it does.
    Conservative (True when unsure): a False lets the batch's rows go unread."""
    c, t = rule.condition, rule.threshold
    if c == "gt":
        return low <= t if holding else high > t
    if c == "gte":
        return low < t if holding else high >= t
    if c == "lt":
        return high >= t if holding else low < t
    if c == "lte":
        return high > t if holding else low <= t
    if c == "outside":
        return (high >= t and low <= rule.threshold_high) if holding else (
            low < t or high > rule.threshold_high)
    if c == "inside":
        return (low < t or high > rule.threshold_high) if holding else (
            high >= t and low <= rule.threshold_high)
    if c == "eq":
        return not (low == high == t) if holding else low <= t <= high
    if c == "ne":
        return low <= t <= high if holding else not (low == high == t)
    return True
