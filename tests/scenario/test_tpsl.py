"""TP/SL: attached to orders or set on positions, Full and Partial, OCO, and their clearing."""

from __future__ import annotations

import pytest

from perpx.core import RejectCode
from perpx.core.commands import SetMarginMode
from perpx.core.enums import (
    CancelReason,
    MarginMode,
    OrderType,
    PositionMode,
    StopOrderType,
    TpSlMode,
    TriggerBy,
)
from perpx.core.events import (
    CommandRejected,
    ConditionalOrderAccepted,
    ConditionalOrderAmended,
    Event,
    Liquidated,
    OrderDeactivated,
    OrderRejected,
    OrderTriggered,
    TpSlAttached,
    TradingStopSet,
)
from support.builders import Driver, of_type

MARK = TriggerBy.MARK_PRICE
INDEX = TriggerBy.INDEX_PRICE


def print_at(d: Driver, price: str) -> list[Event]:
    """Trade 0.001 BTC at `price` between accounts 9 (maker) and 8 (taker)."""
    d.limit(9, "sell", price, "0.001")
    return d.limit(8, "buy", price, "0.001")


def market_around(d: Driver) -> None:
    """Depth 600 away both sides of 65,000 and a last price of 65,000."""
    for price in ("65600", "65700"):
        d.limit(7, "sell", price, "5")
    for price in ("64400", "64300"):
        d.limit(6, "buy", price, "5")
    print_at(d, "65000")


def long_one(d: Driver, account: int = 1, **kw: object) -> list[Event]:
    """Open a 1 BTC long for `account` at 65,000 against account 5."""
    d.limit(5, "sell", "65000", "1")
    return d.limit(account, "buy", "65000", "1", **kw)


def kinds(d: Driver, account: int = 1) -> list[StopOrderType]:
    return [o.stop_order_type for o in d.waiting(account)]


def test_tpsl_on_a_limit_order_wait_for_its_fill_then_guard_the_position() -> None:
    # Arrange
    d = Driver()
    market_around(d)
    placed = d.limit(1, "buy", "65000", "1", take_profit_ticks=655000,
                     stop_loss_ticks=645000)

    # Act
    before_fill = kinds(d)
    filled = d.limit(5, "sell", "65000", "1")

    # Assert
    assert of_type(placed, TpSlAttached)[0].take_profit_ticks == 655000
    assert before_fill == []
    assert kinds(d) == [StopOrderType.TAKE_PROFIT, StopOrderType.STOP_LOSS]
    [stops] = of_type(filled, TradingStopSet)
    assert (stops.take_profit_ticks, stops.stop_loss_ticks) == (655000, 645000)
    assert all(o.qty_lots == 0 and o.close_on_trigger for o in d.waiting(1))


def test_a_full_stop_loss_closes_the_whole_position_and_clears_the_take_profit() -> None:
    # Arrange
    d = Driver()
    market_around(d)
    long_one(d, take_profit_ticks=655000, stop_loss_ticks=645000)
    d.limit(4, "buy", "64400", "0.5")  # a second buyer, so the close needs two levels

    # Act
    events = d.market(3, "sell", "1")  # prints 64,400: the stop loss at 64,500 fires

    # Assert
    [triggered] = of_type(events, OrderTriggered)
    assert triggered.stop_order_type is StopOrderType.STOP_LOSS
    assert d.position(1).size_lots == 0
    [cleared] = of_type(events, OrderDeactivated)
    assert cleared.stop_order_type is StopOrderType.TAKE_PROFIT
    assert cleared.reason is CancelReason.TPSL_CLEARED
    assert d.waiting(1) == []


def test_tpsl_and_trailing_stop_go_when_the_position_is_closed_by_hand() -> None:
    # Arrange
    d = Driver()
    market_around(d)
    long_one(d)
    d.trading_stop(1, tp="66000", sl="64000", trailing="500")

    # Act
    events = d.limit(1, "sell", "64400", "1", reduce_only=True)

    # Assert
    cleared = of_type(events, OrderDeactivated)
    assert {e.stop_order_type for e in cleared} == {
        StopOrderType.TAKE_PROFIT, StopOrderType.STOP_LOSS, StopOrderType.TRAILING_STOP}
    assert {e.reason for e in cleared} == {CancelReason.TPSL_CLEARED}
    assert of_type(events, TradingStopSet)[-1].take_profit_ticks == 0


def test_a_new_order_with_full_tpsl_replaces_the_positions_take_profit() -> None:
    # Arrange
    d = Driver()
    market_around(d)
    long_one(d, take_profit_ticks=655000)
    [tp] = d.waiting(1)

    # Act
    d.limit(5, "sell", "65000", "0.5")
    events = d.limit(1, "buy", "65000", "0.5", take_profit_ticks=660000)

    # Assert
    [amended] = of_type(events, ConditionalOrderAmended)
    assert amended.order_id == tp.order_id and amended.trigger_price_ticks == 660000
    assert [o.trigger_price_ticks for o in d.waiting(1)] == [660000]


def test_partial_tpsl_on_an_order_are_sized_to_what_it_filled() -> None:
    # Arrange
    d = Driver()
    market_around(d)
    d.limit(1, "buy", "65000", "1", take_profit_ticks=655000, stop_loss_ticks=645000,
            tpsl_mode=TpSlMode.PARTIAL)

    # Act
    d.limit(5, "sell", "65000", "0.3")
    first = [o.qty_lots for o in d.waiting(1)]
    d.limit(5, "sell", "65000", "0.2")

    # Assert
    assert first == [300, 300]
    assert [o.qty_lots for o in d.waiting(1)] == [500, 500]
    assert kinds(d) == [StopOrderType.PARTIAL_TAKE_PROFIT, StopOrderType.PARTIAL_STOP_LOSS]
    tp, sl = d.waiting(1)
    assert tp.pair_order_id == sl.order_id and sl.pair_order_id == tp.order_id


def test_when_one_leg_of_a_partial_pair_fires_its_pair_is_cancelled() -> None:
    # Arrange: two pairs of 0.4 and 0.6 on a 1 BTC long
    d = Driver()
    market_around(d)
    long_one(d)
    d.trading_stop(1, tp="65500", sl="64500", size="0.4", tpsl_mode=TpSlMode.PARTIAL)
    d.trading_stop(1, tp="65550", sl="64000", size="0.6", tpsl_mode=TpSlMode.PARTIAL)
    first_tp, first_sl, second_tp, second_sl = d.waiting(1)
    d.limit(6, "buy", "65450", "2")  # someone to take the TP's market sell

    # Act
    events = print_at(d, "65520")

    # Assert
    assert [e.order_id for e in of_type(events, OrderTriggered)] == [first_tp.order_id]
    [oco] = of_type(events, OrderDeactivated)
    assert oco.order_id == first_sl.order_id and oco.reason is CancelReason.OCO
    assert d.position(1).size_lots == 600
    assert [o.order_id for o in d.waiting(1)] == [second_tp.order_id, second_sl.order_id]


def test_a_partial_limit_take_profit_rests_as_a_reduce_only_limit_when_triggered() -> None:
    # Arrange
    d = Driver()
    market_around(d)
    long_one(d)
    d.trading_stop(1, tp="65300", size="0.5", tpsl_mode=TpSlMode.PARTIAL,
                   tp_order_type=OrderType.LIMIT, tp_limit_price_ticks="65500")
    [tp] = d.waiting(1)

    # Act
    print_at(d, "65300")

    # Assert
    resting = d.engine.order(tp.order_id)
    assert resting is not None and resting.reduce_only
    assert (resting.price_ticks, resting.qty_lots) == (655000, 500)


def test_editing_one_leg_of_a_partial_pair_breaks_the_pairing() -> None:
    # Arrange
    d = Driver()
    market_around(d)
    long_one(d)
    d.trading_stop(1, tp="65500", sl="64500", size="0.4", tpsl_mode=TpSlMode.PARTIAL)
    tp, sl = d.waiting(1)

    # Act
    d.amend(1, tp.order_id, trigger="65400")
    events = print_at(d, "65400")

    # Assert
    assert tp.pair_order_id == sl.pair_order_id == 0
    assert of_type(events, OrderDeactivated) == []
    assert [o.order_id for o in d.waiting(1)] == [sl.order_id]


@pytest.mark.parametrize("by", [MARK, INDEX], ids=["by mark price", "by index price"])
def test_a_stop_loss_may_watch_the_mark_or_the_index(by: TriggerBy) -> None:
    # Arrange
    d = Driver()
    market_around(d)
    d.mark("65000")
    d.index("65000")
    long_one(d)
    d.trading_stop(1, sl="64800", sl_trigger_by=by)

    # Act
    unmoved = print_at(d, "64700")  # the last price alone does not fire it
    events = d.mark("64790") if by is MARK else d.index("64790")

    # Assert
    assert of_type(unmoved, OrderTriggered) == []
    [triggered] = of_type(events, OrderTriggered)
    assert triggered.trigger_by is by
    assert d.position(1).size_lots == 0


def test_a_stop_loss_on_the_mark_fires_before_liquidation_looks() -> None:
    # Arrange: an isolated 50x long whose liquidation price is about 63,990
    d = Driver()
    market_around(d)
    d.mark("65000")
    d.apply(SetMarginMode(*d.stamp(), 1, MarginMode.ISOLATED))
    d.leverage(1, "50")
    long_one(d)
    d.trading_stop(1, sl="64500", sl_trigger_by=MARK)
    d.limit(6, "buy", "63500", "5")

    # Act
    events = d.mark("63000")

    # Assert
    assert of_type(events, OrderTriggered)
    assert of_type(events, Liquidated) == []
    assert d.position(1).size_lots == 0


def test_hedge_mode_positions_have_their_own_tpsl() -> None:
    # Arrange
    d = Driver()
    market_around(d)
    d.position_mode(1, PositionMode.HEDGE)
    long_one(d, position_idx=1)
    d.limit(5, "buy", "65000", "1")
    d.limit(1, "sell", "65000", "1", position_idx=2)

    # Act
    d.trading_stop(1, tp="65500", idx=1)
    d.trading_stop(1, tp="64500", idx=2)
    d.limit(6, "buy", "65450", "2")
    events = print_at(d, "65500")

    # Assert
    [triggered] = of_type(events, OrderTriggered)
    assert d.position(1, 1).size_lots == 0 and d.position(1, 2).size_lots == -1000
    assert [(o.position_idx, o.trigger_price_ticks) for o in d.waiting(1)] == [(2, 645000)]
    assert triggered.stop_order_type is StopOrderType.TAKE_PROFIT


@pytest.mark.parametrize(("kw", "code"), [
    ({"reduce_only": True, "take_profit_ticks": 660000}, RejectCode.TPSL_WITH_REDUCE_ONLY),
    ({"take_profit_ticks": 640000}, RejectCode.INVALID_TPSL_PRICE),
    ({"stop_loss_ticks": 660000}, RejectCode.INVALID_TPSL_PRICE),
    ({"take_profit_ticks": 660000, "tp_order_type": OrderType.LIMIT,
      "tp_limit_price_ticks": 660000}, RejectCode.INVALID_PARAMETER),
], ids=["a reduce-only order with a TP", "a long's TP under the price",
        "a long's SL over the price", "a limit TP in Full mode"])
def test_bad_tpsl_on_an_order_refuses_the_whole_order(kw: dict[str, object],
                                                      code: RejectCode) -> None:
    # Arrange
    d = Driver()
    market_around(d)
    long_one(d, account=2)

    # Act
    events = d.limit(2, "buy", "65000", "0.1", **kw)

    # Assert
    [rejected] = events
    assert isinstance(rejected, OrderRejected) and rejected.reason is code


@pytest.mark.parametrize(("kw", "code"), [
    ({"tp": "66000"}, RejectCode.NO_POSITION_FOR_TRADING_STOP),
], ids=["no position"])
def test_trading_stop_without_a_position_is_refused(kw: dict[str, str],
                                                    code: RejectCode) -> None:
    # Arrange
    d = Driver()
    market_around(d)

    # Act
    events = d.trading_stop(1, **kw)

    # Assert
    [rejected] = events
    assert isinstance(rejected, CommandRejected) and rejected.reason is code


def test_trading_stop_on_the_wrong_side_of_the_price_is_refused() -> None:
    # Arrange
    d = Driver()
    market_around(d)
    long_one(d)

    # Act
    events = d.trading_stop(1, tp="64000")

    # Assert
    assert events[0].reason is RejectCode.INVALID_TPSL_PRICE
    assert d.waiting(1) == []


def test_a_price_of_zero_removes_one_leg() -> None:
    # Arrange
    d = Driver()
    market_around(d)
    long_one(d)
    d.trading_stop(1, tp="66000", sl="64000")

    # Act
    events = d.trading_stop(1, tp="0")

    # Assert
    assert kinds(d) == [StopOrderType.STOP_LOSS]
    assert of_type(events, TradingStopSet)[0].take_profit_ticks == 0


def test_a_tpsl_that_is_already_in_the_money_when_its_order_fills_fires_at_once() -> None:
    # Arrange: a resting buy under a mark that already stands above its mark-watching TP
    d = Driver()
    market_around(d)
    d.limit(6, "buy", "64900", "0.5")
    d.mark("65200")
    d.limit(1, "buy", "65000", "0.5", take_profit_ticks=651000, tp_trigger_by=MARK)

    # Act
    events = d.limit(5, "sell", "65000", "0.5")

    # Assert
    assert [e.stop_order_type for e in of_type(events, ConditionalOrderAccepted)] == [
        StopOrderType.TAKE_PROFIT]
    assert [e.stop_order_type for e in of_type(events, OrderTriggered)] == [
        StopOrderType.TAKE_PROFIT]
    assert d.position(1).size_lots == 0


@pytest.mark.parametrize("kind", ["market", "fok", "post_only"],
                         ids=["a market order filled at once", "a FOK that cannot fill",
                              "a PostOnly that would cross"])
def test_tpsl_of_an_order_that_never_rests_leave_nothing_behind(kind: str) -> None:
    # Arrange
    from perpx.core.enums import TimeInForce
    d = Driver()
    market_around(d)
    tpsl = {"take_profit_ticks": 670000, "stop_loss_ticks": 640000,
            "tpsl_mode": TpSlMode.PARTIAL}

    # Act
    if kind == "market":
        d.market(1, "buy", "0.5", **tpsl)
    else:
        tif = TimeInForce.FOK if kind == "fok" else TimeInForce.POST_ONLY
        d.limit(1, "buy", "65600", "50", tif=tif, **tpsl)

    # Assert
    assert d.engine.stops.waiting.attachments == {}
    assert len(d.waiting(1)) == (2 if kind == "market" else 0)
