"""Periods of Bybit's intervals: where each one starts, in ms since the epoch, aligned to UTC.

Minute intervals (1 to 720) and ``D`` align to the epoch, which is a UTC midnight; ``W`` starts
on Monday 00:00 UTC (the epoch was a Thursday, so weeks are offset by four days); ``M`` is the
calendar month. All of it is integer arithmetic on the proleptic Gregorian calendar, so it is
exact, needs no time-zone database and gives the same answer on every machine.
"""

from __future__ import annotations

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
_FIRST_MONDAY_MS = 4 * DAY_MS  # 1970-01-05 00:00 UTC

# GET /v5/market/kline `interval`, in Bybit's order.
KLINE_INTERVALS: tuple[str, ...] = (
    "1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M",
)

# GET /v5/market/open-interest `intervalTime`, with its length.
OPEN_INTEREST_INTERVALS: dict[str, int] = {
    "5min": 5 * MINUTE_MS,
    "15min": 15 * MINUTE_MS,
    "30min": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "4h": 4 * HOUR_MS,
    "1d": DAY_MS,
}

# Every kline interval but M has a fixed length.
_FIXED_MS: dict[str, int] = {
    **{name: int(name) * MINUTE_MS for name in KLINE_INTERVALS if name.isdigit()},
    "D": DAY_MS,
    "W": WEEK_MS,
}


def days_from_civil(year: int, month: int, day: int) -> int:
    """Return the number of days from 1970-01-01 to the given Gregorian date (H. Hinnant)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def civil_from_days(days: int) -> tuple[int, int, int]:
    """Return (year, month, day) of the date `days` after 1970-01-01 (H. Hinnant)."""
    days += 719_468
    era = days // 146_097
    day_of_era = days - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524
                   - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + (3 if shifted_month < 10 else -9)
    return year_of_era + era * 400 + (month <= 2), month, day


def _month_start_ms(ts_ms: int) -> int:
    year, month, _ = civil_from_days(ts_ms // DAY_MS)
    return days_from_civil(year, month, 1) * DAY_MS


def _check(interval: str) -> None:
    if interval != "M" and interval not in _FIXED_MS:
        raise ValueError(f"interval must be one of {', '.join(KLINE_INTERVALS)}, was {interval!r}")


def period_start(interval: str, ts_ms: int) -> int:
    """Return the start of the `interval` period that contains `ts_ms` (floor to the grid)."""
    if interval == "M":
        return _month_start_ms(ts_ms)
    _check(interval)
    if interval == "W":
        return ts_ms - (ts_ms - _FIRST_MONDAY_MS) % WEEK_MS
    return ts_ms - ts_ms % _FIXED_MS[interval]


def next_period_start(interval: str, start_ms: int) -> int:
    """Return the start of the period after the one that starts at `start_ms`."""
    if interval == "M":
        year, month, _ = civil_from_days(start_ms // DAY_MS)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return days_from_civil(year, month, 1) * DAY_MS
    _check(interval)
    return start_ms + _FIXED_MS[interval]


def previous_period_start(interval: str, start_ms: int) -> int:
    """Return the start of the period before the one that starts at `start_ms`."""
    return period_start(interval, start_ms - 1)


def first_period_at_or_after(interval: str, ts_ms: int) -> int:
    """Return the start of the first period that starts at or after `ts_ms` (ceil to the grid)."""
    start = period_start(interval, ts_ms)
    return start if start == ts_ms else next_period_start(interval, start)


def periods_in_window(interval: str, first: int, last: int, start_ms: int | None,
                      end_ms: int | None, limit: int) -> list[int]:
    """Return the period starts a filled kline query covers, oldest first.

    The periods run from `first` to `last` (the first candle to now), cut to the window; with
    a start the `limit` periods from it, else the `limit` periods up to the end (Bybit's
    paging: a start pages forward, an end or nothing pages back from the newest).
    """
    low = first if start_ms is None else max(first, first_period_at_or_after(interval, start_ms))
    high = last if end_ms is None else min(last, period_start(interval, end_ms))
    periods: list[int] = []
    if start_ms is not None:
        period = low
        while period <= high and len(periods) < limit:
            periods.append(period)
            period = next_period_start(interval, period)
    else:
        period = high
        while period >= low and len(periods) < limit:
            periods.append(period)
            period = previous_period_start(interval, period)
        periods.reverse()
    return periods


def open_interest_interval_ms(interval_time: str) -> int:
    """Return the length in ms of an open-interest `intervalTime` (5min ... 1d)."""
    length = OPEN_INTEREST_INTERVALS.get(interval_time)
    if length is None:
        names = ", ".join(OPEN_INTEREST_INTERVALS)
        raise ValueError(f"intervalTime must be one of {names}, was {interval_time!r}")
    return length
