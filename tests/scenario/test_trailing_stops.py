"""Trailing stops: spec §10's published examples and real BTC prices from tests/data/prices.

The stop follows the last price in the position's favour, never back, and fires a market
close once the price retraces by the distance. On real data the engine is compared with a
plain walk over the same prints.
"""

from __future__ import annotations

import csv
from decimal import Decimal

import pytest

from perpx.core.engine import Engine
from perpx.core.enums import StopOrderType
from perpx.core.events import Event, OrderTriggered, TrailingStopMoved
from support.builders import PRICES, Driver, of_type

MINUTE_FILE = PRICES / "btcusd_1m_2023-03-01_2023-03-07.csv"


def text(ticks: int) -> str:
    return f"{ticks // 10}.{ticks % 10}"


def print_at(d: Driver, price: str, closer: str = "buy") -> list[Event]:
    """Print 0.001 BTC at `price` and leave 1 BTC resting there on the `closer` side.

    The resting BTC is what a stop firing at this print closes into; it is cancelled at once
    after, so it never sets a price itself.
    """
    maker, taker = (9, 8) if closer == "buy" else (8, 9)
    first, second = ("sell", "buy") if closer == "buy" else ("buy", "sell")
    d.limit(maker, first, price, "0.001")
    events = d.limit(taker, second, price, "1.001")
    d.cancel_all(taker)
    return events


def walk_to(d: Driver, price: str, closer: str = "buy") -> list[Event]:
    """Print in steps of at most 0.5% (the price band allows 1% a print) until `price`."""
    target = int(Decimal(price) * 10)
    events: list[Event] = []
    last = d.engine.last_price["BTCUSDT"]
    while last != target:
        step = max(1, last // 200)
        last = min(target, last + step) if target > last else max(target, last - step)
        events += print_at(d, text(last), closer)
    return events


def open_position(d: Driver, price: str, side: str = "buy") -> None:
    d.limit(5, "sell" if side == "buy" else "buy", price, "0.5")
    d.limit(1, side, price, "0.5")


def test_published_example_without_a_rise_fires_at_entry_minus_the_distance() -> None:
    # Arrange: long entry 8,000, distance 500 (spec §10 [B-TS])
    d = Driver()
    open_position(d, "8000")
    d.trading_stop(1, trailing="500")

    # Act
    quiet = walk_to(d, "7501")
    events = print_at(d, "7500")

    # Assert
    assert of_type(quiet, OrderTriggered) == []
    [fired] = of_type(events, OrderTriggered)
    assert fired.stop_order_type is StopOrderType.TRAILING_STOP
    assert fired.trigger_price_ticks == 75000
    assert d.position(1).size_lots == 0


def test_published_example_after_a_rise_to_9000_fires_at_8500() -> None:
    # Arrange
    d = Driver()
    open_position(d, "8000")
    d.trading_stop(1, trailing="500")

    # Act
    rises = walk_to(d, "9000") + walk_to(d, "8501")
    events = print_at(d, "8500")

    # Assert
    moved = [e.stop_price_ticks for e in of_type(rises, TrailingStopMoved)]
    assert moved == sorted(moved) and moved[-1] == 85000  # up with each new high, never back
    assert of_type(rises, OrderTriggered) == []
    assert of_type(events, OrderTriggered)[0].trigger_price_ticks == 85000
    assert d.position(1).size_lots == 0


def test_published_example_with_an_activation_price_starts_the_stop_there() -> None:
    # Arrange: activation 8,000, distance 100, last price 7,800
    d = Driver()
    open_position(d, "7800")
    d.trading_stop(1, trailing="100", active="8000")

    # Act
    before = walk_to(d, "7950")
    armed = print_at(d, "8000")
    events = walk_to(d, "7900")

    # Assert
    assert of_type(before, TrailingStopMoved) == []
    assert [e.stop_price_ticks for e in of_type(armed, TrailingStopMoved)] == [79000]
    assert of_type(events, OrderTriggered)[0].trigger_price_ticks == 79000


def test_a_short_trailing_stop_follows_the_price_down() -> None:
    # Arrange
    d = Driver()
    open_position(d, "8000", side="sell")
    d.trading_stop(1, trailing="200")

    # Act
    walk_to(d, "7500", closer="sell")
    events = walk_to(d, "7700", closer="sell")

    # Assert
    assert of_type(events, OrderTriggered)[0].trigger_price_ticks == 77000
    assert d.position(1).size_lots == 0


def candle_prints(hours: int) -> list[int]:
    """Prints in ticks (0.1) along each candle's open → extremes → close path."""
    prints: list[int] = []
    with MINUTE_FILE.open() as handle:
        for n, row in enumerate(csv.DictReader(handle)):
            if n >= hours * 60:
                break
            o, h, low, c = (int(Decimal(row[k]) * 10) for k in ("open", "high", "low", "close"))
            path = (o, low, h, c) if c >= o else (o, h, low, c)
            prints.extend(p for p in path if not prints or p != prints[-1])
    return prints


def expected_fire(prints: list[int], distance: int, long: bool) -> tuple[int, int] | None:
    """Walk the prints: (index of the firing print, stop) for a stop armed at prints[0]."""
    extreme = prints[0]
    for i, price in enumerate(prints[1:], start=1):
        if (price > extreme) if long else (price < extreme):
            extreme = price
        stop = extreme - distance if long else extreme + distance
        if (price <= stop) if long else (price >= stop):
            return i, stop
    return None


@pytest.mark.parametrize(("side", "distance", "hours"),
                         [("buy", 1500, 6), ("sell", 1500, 6), ("buy", 4000, 32),
                          ("sell", 6000, 6)],
                         ids=["long, 150 USD: the first dip", "short, 150 USD",
                              "long, 400 USD: rides the rally for some 12 hours",
                              "short, 600 USD"])
def test_a_trailing_stop_on_real_btc_prints_fires_where_a_plain_walk_says(
        side: str, distance: int, hours: int) -> None:
    # Arrange
    prints = candle_prints(hours)
    expected = expected_fire(prints, distance, side == "buy")
    assert expected is not None, "the data must hold a retrace this large"
    d = Driver()
    open_position(d, text(prints[0]), side)
    d.trading_stop(1, trailing=text(distance))
    closer = "buy" if side == "buy" else "sell"
    stops: list[int] = []
    fired: list[tuple[int, OrderTriggered]] = []

    # Act
    for i, price in enumerate(prints[1:expected[0] + 20], start=1):
        events = print_at(d, text(price), closer)
        stops += [e.stop_price_ticks for e in of_type(events, TrailingStopMoved)]
        fired += [(i, e) for e in of_type(events, OrderTriggered)]

    # Assert
    assert [(i, e.trigger_price_ticks) for i, e in fired] == [expected]
    assert stops == sorted(stops, reverse=side != "buy")  # it never moved back
    assert d.position(1).size_lots == 0
    replayed = Engine(list(d.engine.instruments.values()))
    for command in d.log:
        replayed.apply(command)
    assert replayed.state_hash() == d.engine.state_hash()
