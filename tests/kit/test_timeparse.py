"""Time parsing: ISO 8601, epoch seconds and milliseconds, relative forms; nothing silent."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetra.kit.errors import Invalid
from telemetra.kit.timeparse import parse_query_time, parse_timestamp

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("text, expected", [
    ("now", NOW),
    ("-30s", NOW - timedelta(seconds=30)),
    ("-15m", NOW - timedelta(minutes=15)),
    ("-1h", NOW - timedelta(hours=1)),
    ("-7d", NOW - timedelta(days=7)),
    ("-2w", NOW - timedelta(weeks=2)),
    ("2026-01-31T12:00:00Z", datetime(2026, 1, 31, 12, tzinfo=UTC)),
    ("2026-01-31T12:00:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),  # naive means UTC
    ("2026-01-31T13:00:00+01:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),
    ("2026-01-31", datetime(2026, 1, 31, tzinfo=UTC)),
    ("1769860800", datetime(2026, 1, 31, 12, tzinfo=UTC)),  # epoch seconds
    ("1769860800000", datetime(2026, 1, 31, 12, tzinfo=UTC)),  # epoch milliseconds
    ("1769860800.5", datetime(2026, 1, 31, 12, 0, 0, 500000, tzinfo=UTC)),
])
def test_accepted_forms(text, expected):
    assert parse_query_time(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "-5y", "-1.5h", "+1h", "", "2026-13-01",
                                  "1e400", "nan", "--1h"])
def test_anything_else_is_a_422_naming_the_parameter(text):
    with pytest.raises(Invalid) as error:
        parse_query_time(text, name="start", now=NOW)
    assert error.value.status == 422 and "start" in error.value.detail


def test_the_seconds_milliseconds_boundary():
    assert parse_timestamp(99_999_999_999).year == 5138  # just below 1e11: seconds
    assert parse_timestamp(100_000_000_000).year == 1973  # 1e11 and up: milliseconds


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=30), st.integers(), st.floats(), st.booleans(), st.none()))
def test_random_input_parses_or_is_a_clean_error(value):
    try:
        parsed = parse_timestamp(value)
    except (ValueError, OverflowError, OSError):
        return
    assert parsed.tzinfo is not None


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(1974, 1, 1), max_value=datetime(2500, 1, 1),
                    timezones=st.just(UTC)))
def test_iso_and_epoch_round_trip(moment):
    # From 1974 on, epoch milliseconds are >= 1e11 and so read as milliseconds (the rule puts
    # earlier millisecond values in the seconds range: see the boundary test above).
    assert parse_timestamp(moment.isoformat()) == moment
    millis = int(moment.timestamp() * 1000)
    assert parse_timestamp(millis) == datetime.fromtimestamp(millis / 1000, UTC)
