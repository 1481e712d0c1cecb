"""Match, then settle: the walk's steps settle in order, and reduce-only room sees the walk."""

from __future__ import annotations

from perpx.core import CancelReason, OrderAccepted, OrderCancelled, Trade
from perpx.core.events import BalanceChanged, Executed, PositionChanged
from support.builders import Driver, btcusdt, of_type


def long_position(driver: Driver, account: int, qty: str) -> None:
    driver.limit(9, "Sell", "20000", qty)
    driver.limit(account, "Buy", "20000", qty)


def test_a_reduce_only_maker_sees_the_fills_earlier_in_the_same_walk() -> None:
    driver = Driver(btcusdt())
    long_position(driver, 1, "1")
    driver.limit(1, "Sell", "20001", "0.6")  # a plain sell: closes 0.6 of the long when hit
    driver.limit(1, "Sell", "20002", "1", reduce_only=True)
    events = driver.limit(3, "Buy", "20002", "2")
    # The plain sell fills first, so only 0.4 of the long is left for the reduce-only maker:
    # it must not fill 1 and turn the account short.
    assert [t.qty_lots for t in of_type(events, Trade)] == [600, 400]
    assert driver.position(1).size_lots == 0
    [cut] = [e for e in of_type(events, OrderCancelled) if e.account_id == 1]
    assert cut.reason is CancelReason.REDUCE_ONLY


def test_each_trade_is_followed_by_its_own_settlement_before_the_next() -> None:
    driver = Driver(btcusdt())
    driver.limit(1, "Sell", "20001", "0.1")
    driver.limit(2, "Sell", "20002", "0.1")
    events = driver.limit(3, "Buy", "20002", "0.2")
    kinds = [type(e) for e in events if not isinstance(e, OrderAccepted)]
    first, second = (i for i, kind in enumerate(kinds) if kind is Trade)
    between = set(kinds[first + 1:second])
    assert {BalanceChanged, Executed, PositionChanged} <= between
    assert {BalanceChanged, Executed, PositionChanged} <= set(kinds[second + 1:])
