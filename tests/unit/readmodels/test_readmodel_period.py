"""Interval grids: minute intervals, D, W (Monday) and M (calendar month), against datetime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perpx.readmodels.period import (
    DAY_MS,
    KLINE_INTERVALS,
    civil_from_days,
    days_from_civil,
    first_period_at_or_after,
    next_period_start,
    open_interest_interval_ms,
    period_start,
    previous_period_start,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(text: str) -> int:
    """Milliseconds of an ISO UTC time such as '2024-02-29T23:59:59.999'."""
    moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(milliseconds=1)


def to_dt(ts_ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ts_ms)


@pytest.mark.parametrize(
    ("interval", "ts", "start"),
    [
        ("1", "2024-03-10T12:34:56.789", "2024-03-10T12:34:00"),
        ("3", "2024-03-10T12:34:56.789", "2024-03-10T12:33:00"),
        ("15", "2024-03-10T12:44:59.999", "2024-03-10T12:30:00"),
        ("120", "2024-03-10T13:59:59.999", "2024-03-10T12:00:00"),
        ("240", "2024-03-10T03:59:59.999", "2024-03-10T00:00:00"),
        ("360", "2024-03-10T18:00:00", "2024-03-10T18:00:00"),
        ("720", "2024-03-10T11:59:59.999", "2024-03-10T00:00:00"),
        ("D", "2024-03-10T23:59:59.999", "2024-03-10T00:00:00"),
        ("W", "2024-03-10T23:59:59.999", "2024-03-04T00:00:00"),  # Sunday -> Monday before
        ("W", "2024-03-11T00:00:00", "2024-03-11T00:00:00"),  # Monday starts a week
        ("W", "1970-01-01T00:00:00", "1969-12-29T00:00:00"),  # the epoch was a Thursday
        ("M", "2024-02-29T23:59:59.999", "2024-02-01T00:00:00"),  # leap day
        ("M", "2024-03-01T00:00:00", "2024-03-01T00:00:00"),
        ("M", "2023-12-31T23:59:59.999", "2023-12-01T00:00:00"),
    ],
    ids=lambda value: str(value))
def test_period_start_aligns_to_the_utc_grid(interval: str, ts: str, start: str) -> None:
    assert period_start(interval, ms(ts)) == ms(start)


@pytest.mark.parametrize(
    ("start", "following"),
    [("2023-12-01T00:00:00", "2024-01-01T00:00:00"),
     ("2024-01-01T00:00:00", "2024-02-01T00:00:00"),
     ("2024-02-01T00:00:00", "2024-03-01T00:00:00")],
    ids=["December rolls into the next year", "31-day January", "29-day leap February"])
def test_months_follow_the_calendar(start: str, following: str) -> None:
    assert next_period_start("M", ms(start)) == ms(following)
    assert previous_period_start("M", ms(following)) == ms(start)


@given(st.integers(min_value=-(10**12), max_value=4 * 10**12))
def test_week_and_month_starts_match_datetime(ts_ms: int) -> None:
    moment = to_dt(ts_ms)
    monday = (moment - timedelta(days=moment.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0)
    first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert to_dt(period_start("W", ts_ms)) == monday
    assert to_dt(period_start("M", ts_ms)) == first


@given(st.integers(min_value=-719_162, max_value=800_000))  # datetime: year 1 onward
def test_civil_days_round_trip(days: int) -> None:
    year, month, day = civil_from_days(days)
    assert days_from_civil(year, month, day) == days
    assert (EPOCH + timedelta(days=days)).date().timetuple()[:3] == (year, month, day)


@pytest.mark.parametrize("interval", KLINE_INTERVALS)
def test_each_period_ends_where_the_next_starts(interval: str) -> None:
    ts = ms("2024-02-29T13:47:12.345")
    start = period_start(interval, ts)
    following = next_period_start(interval, start)
    assert start <= ts < following
    assert period_start(interval, following - 1) == start
    assert period_start(interval, following) == following
    assert first_period_at_or_after(interval, start) == start
    assert first_period_at_or_after(interval, start + 1) == following


def test_unknown_intervals_are_refused() -> None:
    with pytest.raises(ValueError, match="interval"):
        period_start("2", 0)
    with pytest.raises(ValueError, match="intervalTime"):
        open_interest_interval_ms("2h")
    assert open_interest_interval_ms("1d") == DAY_MS
