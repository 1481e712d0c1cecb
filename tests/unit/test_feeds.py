"""Index feeds: candle paths (order of extremes, timing, tick rounding), headers, random walk."""

from __future__ import annotations

from decimal import Decimal
from itertools import islice, pairwise
from pathlib import Path

import pytest

from perpx.convert import to_ticks
from perpx.feeds import (
    Candle,
    CandleReplay,
    IndexObservation,
    PriceFeed,
    RandomWalkFeed,
    candle_path,
    merge_feeds,
    read_candles,
    round_to_tick,
)
from support.builders import PRICES, btcusdt

MINUTE_FILE = PRICES / "btcusd_1m_2023-03-01_2023-03-07.csv"
DAILY_FILE = PRICES / "btcusd_1d_2011-2025.csv"
T0 = 1_677_628_800_000  # 2023-03-01 00:00 UTC


def candle(o: str, h: str, low: str, c: str, open_ms: int = T0) -> Candle:
    return Candle(open_ms, Decimal(o), Decimal(h), Decimal(low), Decimal(c))


def prices(path: list[tuple[int, str]]) -> list[str]:
    return [price for _, price in path]


# -- the path through a candle ----------------------------------------------------------------

@pytest.mark.parametrize(
    ("ohlc", "expected"),
    [
        (("100.0", "101.0", "98.0", "99.0"), ["100.00", "101.00", "98.00", "99.00"]),
        (("100.0", "103.0", "99.5", "102.0"), ["100.00", "99.50", "103.00", "102.00"]),
        (("100.0", "102.0", "98.0", "101.0"), ["100.00", "98.00", "102.00", "101.00"]),
        (("100.0", "102.0", "98.0", "99.0"), ["100.00", "102.00", "98.00", "99.00"]),
        (("100.0", "100.0", "100.0", "100.0"), ["100.00"] * 4),
    ],
    ids=[
        "the high is nearer the open so it comes first",
        "the low is nearer the open so it comes first",
        "equally far extremes and an up close visit the low first",
        "equally far extremes and a down close visit the high first",
        "a flat candle stays flat",
    ],
)
def test_a_candle_walks_open_then_the_nearer_extreme_then_the_other_then_close(
        ohlc: tuple[str, str, str, str], expected: list[str]) -> None:
    path = candle_path(candle(*ohlc), 60_000, 15_000, "0.10")
    assert prices(path) == expected
    assert [ts for ts, _ in path] == [T0, T0 + 15_000, T0 + 30_000, T0 + 45_000]


def test_finer_steps_hit_every_waypoint_and_interpolate_between_them() -> None:
    # 12 samples: the waypoints sit on samples round(j * 11 / 3) = 0, 4, 7, 11.
    path = candle_path(candle("100.0", "104.0", "98.0", "101.0"), 60_000, 5_000, "0.10")
    got = prices(path)
    assert len(got) == 12
    assert [got[0], got[4], got[7], got[11]] == ["100.00", "98.00", "104.00", "101.00"]
    assert got[1:4] == ["99.50", "99.00", "98.50"]  # open -> low in four equal steps
    assert got[5:7] == ["100.00", "102.00"]  # low -> high in three
    assert got[8:11] == ["103.30", "102.50", "101.80"]  # high -> close, rounded to the tick


@pytest.mark.parametrize(
    ("step_ms", "expected"),
    [(60_000, ["100.00"]), (30_000, ["100.00", "99.00"]), (20_000, ["100.00", "101.00", "99.00"])],
    ids=["one sample: the open", "two samples: open and close",
         "three samples: open, nearer extreme, close"],
)
def test_coarse_steps_keep_the_open_and_the_close_first(step_ms: int,
                                                        expected: list[str]) -> None:
    assert prices(candle_path(candle("100.0", "101.0", "98.0", "99.0"), 60_000, step_ms,
                              "0.10")) == expected


@pytest.mark.parametrize(
    ("price", "tick", "expected"),
    [
        ("23144.78", "0.10", "23144.80"),
        ("23144.75", "0.10", "23144.80"),
        ("23144.7499", "0.10", "23144.70"),
        ("23144.72", "0.10", "23144.70"),
        ("10.9", "0.10", "10.90"),
        ("1.23456", "0.0005", "1.2345"),
        ("1.23476", "0.0005", "1.2350"),
        ("113357.0", "0.5", "113357.0"),
    ],
    ids=["up to the nearer tick", "a half rounds away from zero", "just under a half rounds down",
         "down to the nearer tick", "the tick's decimals are kept",
         "a tick that is not a power of ten, down", "a tick that is not a power of ten, up",
         "already on the grid"],
)
def test_prices_round_to_the_nearest_tick(price: str, tick: str, expected: str) -> None:
    assert round_to_tick(Decimal(price), tick) == expected


def test_every_replayed_price_converts_to_ticks_exactly() -> None:
    spec = btcusdt()
    path = candle_path(candle("23144.78", "23152.48", "23133.11", "23143.72"), 60_000, 1_000,
                       spec.tick_size)
    ticks = [to_ticks(spec, price) for _, price in path]  # raises if off the grid
    assert ticks[0] == 231448 and ticks[-1] == 231437
    assert max(ticks) == 231525 and min(ticks) == 231331  # the extremes, rounded


# -- files ----------------------------------------------------------------------------------------

def test_the_minute_file_replays_its_first_candle_as_open_high_low_close() -> None:
    # 2023-03-01 00:00: O 23144.78 H 23152.48 L 23133.11 C 23143.72; the high is nearer.
    feed = CandleReplay(MINUTE_FILE, "BTCUSDT", "0.10", step_ms=15_000)
    first = list(islice(feed, 4))
    assert feed.candle_ms == 60_000
    assert first == [
        IndexObservation(T0, "BTCUSDT", "23144.80"),
        IndexObservation(T0 + 15_000, "BTCUSDT", "23152.50"),
        IndexObservation(T0 + 30_000, "BTCUSDT", "23133.10"),
        IndexObservation(T0 + 45_000, "BTCUSDT", "23143.70"),
    ]


def test_the_daily_file_header_is_understood_and_its_candles_last_a_day() -> None:
    feed = CandleReplay(DAILY_FILE, "BTCUSDT", "0.10", step_ms=6 * 3_600_000)
    assert feed.candle_ms == 86_400_000
    first_day = list(islice(feed, 4))
    start = 1_313_625_600_000  # 2011-08-18 00:00 UTC, the file's unix_timestamp
    assert [o.ts_ms for o in first_day] == [start + k * 6 * 3_600_000 for k in range(4)]
    assert {o.price for o in first_day} == {"10.90"}  # a flat first day


def test_a_time_window_replays_only_the_candles_opening_inside_it() -> None:
    feed = CandleReplay(MINUTE_FILE, "BTCUSDT", "0.10", step_ms=30_000,
                        start_ms=T0 + 60_000, end_ms=T0 + 3 * 60_000)
    assert [o.ts_ms - T0 for o in feed] == [60_000, 90_000, 120_000, 150_000]


def test_both_header_shapes_parse_to_the_same_candle(tmp_path: Path) -> None:
    minute = tmp_path / "m.csv"
    minute.write_text("open_time,open,high,low,close,volume\n"
                      "2023-03-01 00:00:00+00:00,1.5,2.25,1.0,2.0,3\n")
    daily = tmp_path / "d.csv"
    daily.write_text("timestamp,open,close,volume,unix_timestamp,high,low\n"
                     "2023-03-01 00:00:00,1.5,2.0,3,1677628800,2.25,1.0\n")
    assert list(read_candles(minute)) == list(read_candles(daily)) == [
        candle("1.5", "2.25", "1.0", "2.0")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("when,open,high,low,close\n2023-03-01 00:00:00,1,2,1,1\n", "unknown candle header"),
        ("open_time,open,high,low,close\n2023-03-01 00:00:00,1,2,1,3\n", "bracket"),
        ("open_time,open,high,low,close\n2023-03-01 00:00:00,1,2,abc,1\n", "malformed"),
        ("open_time,open,high,low,close\n2023-03-01 00:00:00,1,2,NaN,1\n", "finite"),
        ("timestamp,open,close,volume,unix_timestamp,high,low\n"
         "2023-03-01 00:00:00,1,1,0,1677628801,2,1\n", "disagrees"),
        ("open_time,open,high,low,close\n2023-03-01 00:01:00,1,2,1,1\n"
         "2023-03-01 00:00:00,1,2,1,1\n", "rise"),
    ],
    ids=["an unknown header", "a close above the high", "a price that is not a number",
         "a NaN price", "epoch seconds that disagree with the timestamp", "time going back"],
)
def test_a_bad_file_is_refused_with_its_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        list(read_candles(path))


# -- the simulated feed ---------------------------------------------------------------------------

def walk(seed: int, **overrides: object) -> RandomWalkFeed:
    settings: dict[str, object] = {"start_ms": T0, "step_ms": 1_000, "volatility": 0.8,
                                   "seed": seed, "end_ms": T0 + 3_600_000}
    settings.update(overrides)
    return RandomWalkFeed("BTCUSDT", "0.10", "23000", **settings)  # type: ignore[arg-type]


def test_the_random_walk_repeats_exactly_for_a_seed_and_differs_for_another() -> None:
    first, again, other = list(walk(7)), list(walk(7)), list(walk(8))
    assert first == again
    assert first != other
    feed = walk(7)
    assert list(feed) == list(feed)  # iterating again restarts the same walk


def test_the_random_walk_starts_at_its_price_and_keeps_its_clock_and_tick_grid() -> None:
    spec = btcusdt()
    observations = list(walk(3))
    assert observations[0] == IndexObservation(T0, "BTCUSDT", "23000.00")
    assert len(observations) == 3_600  # end_ms is exclusive
    assert all(b.ts_ms - a.ts_ms == 1_000 for a, b in pairwise(observations))
    ticks = [to_ticks(spec, o.price) for o in observations]
    assert len(set(ticks)) > 100  # it moves
    assert all(abs(t - 230_000) < 23_000 for t in ticks)  # an hour at 80% a year: < 10%


def test_a_walk_without_volatility_stays_at_its_start_price() -> None:
    assert {o.price for o in walk(1, volatility=0.0)} == {"23000.00"}


def test_an_endless_walk_yields_as_long_as_asked() -> None:
    assert len(list(islice(walk(1, end_ms=None), 10_000))) == 10_000


def test_feeds_satisfy_the_port_and_merge_in_time_then_symbol_order() -> None:
    btc = walk(1, step_ms=2_000, end_ms=T0 + 6_000)
    eth = RandomWalkFeed("ETHUSDT", "0.01", "1600", start_ms=T0, step_ms=3_000, volatility=0.5,
                         seed=2, end_ms=T0 + 6_000)
    assert isinstance(btc, PriceFeed) and isinstance(eth, PriceFeed)
    merged = [(o.ts_ms - T0, o.symbol) for o in merge_feeds([btc, eth])]
    assert merged == [(0, "BTCUSDT"), (0, "ETHUSDT"), (2_000, "BTCUSDT"), (3_000, "ETHUSDT"),
                      (4_000, "BTCUSDT")]
