"""The read side's fast paths (issue #15, gateway cost) against plain recomputations.

- `Klines._add` updates the open candle of each interval in place (the update rule inline,
  `_Track.roll` for a bar out of period): every candle equals the plain formula over the
  updates of its period (open the first, high and low the extremes, close the latest by
  time, sums), in any arrival order, and a bounded model hands its sink exactly the candles
  that closed;
- `Books.apply` and `BookMirror.apply` dispatch on exact event types: the mirror of a random
  order stream folded command by command shows the engine's own book after each command;
- `FundingHistory.apply_all` is `apply` on each event (in `test_readmodels_from_engine`).
"""

from __future__ import annotations

from random import Random

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.core.commands import PlaceOrder
from perpx.core.enums import OrderType, Side, TimeInForce
from perpx.readmodels import Klines, PriceSource
from perpx.readmodels.books import Books
from perpx.readmodels.klines import Candle
from perpx.readmodels.period import KLINE_INTERVALS, period_start
from support.builders import Driver, amend_or_cancel_open, btcusdt

T0 = 1_700_006_400_000
SYMBOL = "BTCUSDT"
Update = tuple[int, int, int]  # (ts_ms, price, qty)

updates_strategy = st.lists(
    st.tuples(st.integers(0, 3 * 86_400_000), st.integers(1, 10_000), st.integers(0, 50)),
    min_size=1, max_size=60)


def _expected(interval: str, updates: list[Update], t0: int = T0) -> dict[int, Candle]:
    """Each period's candle by the plain formula (close: the latest time, then arrival)."""
    grouped: dict[int, list[Update]] = {}
    for update in updates:
        grouped.setdefault(period_start(interval, t0 + update[0]), []).append(update)
    candles = {}
    for start, found in grouped.items():
        latest = max(range(len(found)), key=lambda n: (found[n][0], n))
        prices = [price for _, price, _ in found]
        candles[start] = Candle(start, found[0][1], max(prices), min(prices), found[latest][1],
                                sum(qty for _, _, qty in found),
                                sum(qty * 3 for _, _, qty in found), t0 + found[latest][0])
    return candles


def _held(klines: Klines, interval: str) -> dict[int, Candle]:
    track = klines._track(PriceSource.LAST, SYMBOL, interval)
    assert track is not None
    return {start: bar.freeze() for start, bar in track.bars.items()}


@settings(max_examples=150, deadline=None)
@given(updates_strategy)
def test_every_candle_is_the_plain_formula_over_its_period_in_any_order(
        updates: list[Update]) -> None:
    # Arrange: an unbounded model takes updates in any time order
    klines = Klines([btcusdt()])
    # Act
    for ts, price, qty in updates:
        klines._add(PriceSource.LAST, SYMBOL, T0 + ts, price, qty, qty * 3)
    # Assert
    for interval in KLINE_INTERVALS:
        assert _held(klines, interval) == _expected(interval, updates)


# 2023-12-31 23:57 UTC, a Sunday: three minutes later a new hour, day, week (Monday) and
# month begin at once. Updates a few seconds apart over the six minutes around it mostly
# land in the open minute, which `Klines._add` then takes for every track's open candle.
NEW_YEAR_T0 = 1_704_067_020_000
clustered_updates = st.lists(
    st.tuples(st.integers(0, 6 * 60_000), st.integers(1, 10_000), st.integers(0, 50)),
    min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(clustered_updates, st.booleans())
def test_updates_within_the_open_minute_are_the_plain_formula_on_every_track(
        updates: list[Update], in_time_order: bool) -> None:
    # Arrange: updates clustered around every interval's boundary, in time order (bounded
    # model, as the engine's clock) or in any order (unbounded)
    if in_time_order:
        updates = sorted(updates, key=lambda update: update[0])
    klines = Klines([btcusdt()], keep_closed=None if not in_time_order else 10_000)
    # Act
    for ts, price, qty in updates:
        klines._add(PriceSource.LAST, SYMBOL, NEW_YEAR_T0 + ts, price, qty, qty * 3)
    # Assert
    for interval in KLINE_INTERVALS:
        assert _held(klines, interval) == _expected(interval, updates, NEW_YEAR_T0)


class _Closed:
    def __init__(self) -> None:
        self.candles: list[tuple[str, Candle]] = []

    def candle_closed(self, source: str, symbol: str, interval: str, candle: Candle) -> None:
        self.candles.append((interval, candle))


@settings(max_examples=150, deadline=None)
@given(updates_strategy)
def test_a_bounded_model_keeps_the_latest_candles_and_hands_on_the_closed_ones(
        updates: list[Update]) -> None:
    # Arrange: the engine's clock never runs back, as a bounded model requires
    updates = sorted(updates, key=lambda update: update[0])
    sink = _Closed()
    klines = Klines([btcusdt()], keep_closed=2, sink=sink)
    # Act
    for ts, price, qty in updates:
        klines._add(PriceSource.LAST, SYMBOL, T0 + ts, price, qty, qty * 3)
    # Assert: in memory the newest three periods; handed on, every earlier one, in order
    for interval in KLINE_INTERVALS:
        expected = _expected(interval, updates)
        starts = sorted(expected)
        assert _held(klines, interval) == {start: expected[start] for start in starts[-3:]}
        assert [candle for name, candle in sink.candles if name == interval] == \
            [expected[start] for start in starts[:-1]]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(5, 60))
def test_the_book_mirror_shows_the_engine_s_book_after_every_command(seed: int,
                                                                     count: int) -> None:
    # Arrange: a random stream of limit and market orders, amends and cancels
    rng = Random(seed)
    driver = Driver()
    lot = {SYMBOL: 1}
    books = Books([SYMBOL])
    mid = driver.engine.mark_price.get(SYMBOL) or 650_000
    for _ in range(count):
        seq, ts = driver.stamp()
        if driver.engine.open_orders and rng.random() < 0.35:
            command = msgspec.structs.replace(
                amend_or_cancel_open(rng, seq, driver.engine, lot), ts_ms=ts)
        else:
            market = rng.random() < 0.15
            command = PlaceOrder(
                seq, ts, rng.randint(1, 6), SYMBOL, rng.choice((Side.BUY, Side.SELL)),
                OrderType.MARKET if market else OrderType.LIMIT, rng.randint(1, 20),
                None if market else mid + rng.randint(-20, 20),
                time_in_force=TimeInForce.IOC if market else TimeInForce.GTC)
        # Act
        events = driver.apply(command)
        books.apply(command, events)
        # Assert
        bids, asks = driver.depth(SYMBOL, 1_000)
        assert books.mirrors[SYMBOL].top(1_000) == (list(bids), list(asks))
