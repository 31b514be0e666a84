"""Aggregation intervals and bucket boundaries (pure logic).

- Intervals shorter than a day (``15s``, ``5m``, ``1h``...) are fixed lengths, aligned to
  multiples since the epoch shifted by the zone's UTC offset, so ``1h`` buckets start on local
  hours even in zones like Asia/Kolkata (+05:30).
- Days, weeks and months are calendar buckets in the zone: a day starts at local midnight (23
  or 25 hours long on daylight-saving days), a week on Monday at local midnight, a month on
  the 1st. ``Nd`` counts days from 1970-01-01, ``Nw`` weeks from Monday 1970-01-05, ``Nmo``
  months from January 1970.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telemetra.kit.errors import Invalid

_INTERVAL = re.compile(r"^(\d{1,6})(s|m|h|d|w|mo)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600}
MAX_FIXED_SECONDS = 86_400  # longer fixed widths are written in d/w/mo
EPOCH_DAY = date(1970, 1, 1)
EPOCH_MONDAY = date(1970, 1, 5)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_MICROS = 2**63 - 1


@dataclass(frozen=True)
class Interval:
    count: int
    unit: str  # s, m, h (fixed) or d, w, mo (calendar)

    @property
    def fixed(self) -> bool:
        return self.unit in _SECONDS

    @property
    def seconds(self) -> int:
        return self.count * _SECONDS[self.unit]

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"


def parse_interval(text: str) -> Interval:
    match = _INTERVAL.match(text.strip())
    if not match or int(match.group(1)) < 1:
        raise Invalid(f"interval: {text!r} is not an interval; use a whole number and s, m, h, "
                      "d, w or mo, e.g. 1m, 5m, 1h, 1d, 1w, 1mo", loc=["query", "interval"])
    interval = Interval(int(match.group(1)), match.group(2))
    if interval.fixed and interval.seconds > MAX_FIXED_SECONDS:
        raise Invalid(f"interval: {text!r} is longer than a day; use d, w or mo",
                      loc=["query", "interval"])
    if (interval.unit == "d" and interval.count > 366) or (
            interval.unit == "w" and interval.count > 53) or (
            interval.unit == "mo" and interval.count > 120):
        raise Invalid(f"interval: {text!r} is too long", loc=["query", "interval"])
    return interval


def parse_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"tz: {name!r} is not an IANA time zone name (e.g. Europe/Brussels)",
                      loc=["query", "tz"]) from None


def fixed_offset_seconds(zone: ZoneInfo, at: datetime) -> int:
    """The zone's UTC offset (seconds) that fixed-width buckets are aligned with."""
    offset = at.astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset else 0


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The instant a local calendar day starts (00:00, or the first valid time after a gap)."""
    naive = datetime(day.year, day.month, day.day)
    local = naive.replace(tzinfo=zone)
    # A midnight inside a daylight-saving gap does not exist: the day starts at the gap's end.
    round_trip = local.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if round_trip != naive:
        local = (naive + timedelta(hours=1)).replace(tzinfo=zone)
    return local.astimezone(UTC)


def calendar_start(day: date, interval: Interval) -> date:
    """The first local day of the bucket holding ``day``."""
    if interval.unit == "d":
        return EPOCH_DAY + timedelta(days=(day - EPOCH_DAY).days // interval.count
                                     * interval.count)
    if interval.unit == "w":
        weeks = (day - EPOCH_MONDAY).days // 7 // interval.count * interval.count
        return EPOCH_MONDAY + timedelta(weeks=weeks)
    months = (day.year * 12 + day.month - 1) // interval.count * interval.count
    return date(months // 12, months % 12 + 1, 1)


def _next_calendar(day: date, interval: Interval) -> date:
    if interval.unit == "d":
        return day + timedelta(days=interval.count)
    if interval.unit == "w":
        return day + timedelta(weeks=interval.count)
    months = day.year * 12 + day.month - 1 + interval.count
    return date(months // 12, months % 12 + 1, 1)


def _local_date(moment: datetime, zone: ZoneInfo) -> date:
    try:
        return moment.astimezone(zone).date()
    except OverflowError:  # within a day of year 1 or 9999: the UTC date is close enough
        return moment.date()


def bucket_count(start: datetime, end: datetime, interval: Interval, zone: ZoneInfo,
                 offset_seconds: int = 0) -> int:
    """How many buckets the range from ``start`` to ``end`` spans (arithmetic only, before
    any query: this is what bounds a request's work)."""
    if interval.fixed:
        width = timedelta(seconds=interval.seconds)
        shift = _EPOCH + timedelta(seconds=offset_seconds)
        return (end - shift) // width - (start - shift) // width + 1
    first = calendar_start(_local_date(start, zone), interval)
    last = calendar_start(_local_date(end, zone), interval)
    if interval.unit == "mo":
        months = (last.year - first.year) * 12 + last.month - first.month
        return months // interval.count + 1
    days = interval.count * (7 if interval.unit == "w" else 1)
    return (last - first).days // days + 1


def bucket_of(moment: datetime, interval: Interval, zone: ZoneInfo,
              offset_seconds: int = 0) -> datetime:
    """The start of the bucket holding ``moment`` (the reference used by tests and SQLite)."""
    if interval.fixed:
        epoch = int(moment.timestamp() // 1) - offset_seconds
        start = epoch - epoch % interval.seconds + offset_seconds
        return datetime.fromtimestamp(start, UTC)
    return _local_midnight(calendar_start(moment.astimezone(zone).date(), interval), zone)


class CalendarBuckets:
    """SQLite's bucket function for calendar intervals: epoch microseconds to the start of
    their bucket, worked out as readings come (a query touches only the buckets that hold
    readings, whatever its range). Readings come in time order per sensor, so the last
    bucket found almost always holds the next reading too."""

    def __init__(self, interval: Interval, zone: ZoneInfo) -> None:
        self.interval, self.zone = interval, zone
        self.low = self.high = 0  # the last bucket found, [low, high)

    def __call__(self, ts: int) -> int:
        if not self.low <= ts < self.high:
            try:
                self.low, self.high = self._bucket(ts)
            except OverflowError:  # local time before year 1: the UTC day
                day = 86_400_000_000
                self.low, self.high = ts // day * day, ts // day * day + day
        return self.low

    def _bucket(self, ts: int) -> tuple[int, int]:
        from telemetra.db.types import to_micros

        moment = _EPOCH + timedelta(microseconds=ts)
        day = calendar_start(_local_date(moment, self.zone), self.interval)
        low = to_micros(_local_midnight(day, self.zone))
        try:
            high = to_micros(_local_midnight(_next_calendar(day, self.interval), self.zone))
        except OverflowError:  # the last bucket before year 10000
            high = _MAX_MICROS
        if ts < low:  # before a midnight that a daylight-saving gap moved: the day before
            high = low
            low = to_micros(_local_midnight(calendar_start(day - timedelta(days=1),
                                                           self.interval), self.zone))
        return low, high
