"""The one order projection: conditional, TP/SL and trailing orders from events to wire objects.

The projector is fed every command's events, as the service feeds it; its open orders must
always be the engine's resting and waiting orders, with the same figures.
"""

from __future__ import annotations

import random

from perpx.api import wire
from perpx.core.commands import Command
from perpx.core.enums import OrderStatus, StopOrderType, TpSlMode, TriggerBy
from perpx.core.events import Event
from perpx.store.records import (
    ExecutionRecord,
    LedgerRecord,
    OrderRecord,
    Projection,
    Projector,
)
from support.builders import Driver, btcusdt


class Projected(Driver):
    """A Driver whose every command is also folded into a projector."""

    def __init__(self) -> None:
        self.projector = Projector([btcusdt()])
        self.last = Projection()
        super().__init__(btcusdt())

    def apply(self, command: Command) -> list[Event]:
        events = super().apply(command)
        self.last = self.projector.project(command, events)
        return events

    def row(self, order_id: int) -> dict[str, object]:
        record = self.projector.open.get(order_id) or self.projector.recent[1][order_id]
        return wire.order(record, self.spec())


def book(d: Projected, mid: int = 30000) -> None:
    """Makers 8 and 9 quote one BTC every 10 USDT for 50 USDT each way."""
    for step in range(1, 6):
        d.limit(8, "sell", str(mid + 10 * step), "1")
        d.limit(9, "buy", str(mid - 10 * step), "1")
    d.mark(str(mid))


def test_conditional_order_goes_untriggered_triggered_filled() -> None:
    d = Projected()
    book(d)
    d.limit(8, "sell", "30005", "0.01")
    d.limit(9, "buy", "30005", "0.01")  # last price 30005
    placed = d.conditional(1, "buy", "0.5", "30015", direction=1,
                           take_profit_ticks="31000", stop_loss_ticks="29000")
    order_id = placed[0].order_id
    row = d.row(order_id)
    assert row["orderStatus"] == "Untriggered" and row["stopOrderType"] == "Stop"
    assert (row["triggerPrice"], row["triggerDirection"], row["triggerBy"]) == (
        "30015.00", 1, "LastPrice")
    assert (row["takeProfit"], row["stopLoss"], row["tpslMode"]) == ("31000.00", "29000.00",
                                                                     "Full")
    assert row["price"] == "0" and row["leavesQty"] == "0.500"
    assert row["lastPriceOnCreated"] == "30005.00" and row["createType"] == "CreateByStopOrder"
    d.market(2, "buy", "1.5")  # prints 30010 then 30020: crosses 30015
    assert [r.status for r in d.last.triggered] == [int(OrderStatus.TRIGGERED)]
    assert d.row(order_id)["orderStatus"] == "Filled"
    fills = [e for e in d.last.executions if e.order_id == order_id]
    assert fills and all(e.create_type == "CreateByStopOrder" for e in fills)
    assert {e.stop_order_type for e in fills} == {int(StopOrderType.STOP)}
    # Its TP/SL started with the position: the projector says so on the position.
    stop = d.projector.trading_stop(1, "BTCUSDT", 0)
    assert (stop.take_profit_ticks, stop.stop_loss_ticks) == (310000, 290000)


def test_tpsl_and_trailing_go_with_the_position() -> None:
    d = Projected()
    book(d)
    d.market(1, "buy", "0.5")
    d.trading_stop(1, tp="31000", sl="29000", trailing="100",
                   sl_trigger_by=TriggerBy.MARK_PRICE)
    legs = {r.stop_order_type: r for r in d.projector.open_orders(1)}
    assert set(legs) == {int(StopOrderType.TAKE_PROFIT), int(StopOrderType.STOP_LOSS),
                         int(StopOrderType.TRAILING_STOP)}
    trailing = wire.order(legs[int(StopOrderType.TRAILING_STOP)], d.spec())
    assert trailing["triggerPrice"] == "29910.00"  # armed at the last print 30010
    assert wire.order(legs[int(StopOrderType.STOP_LOSS)], d.spec())["triggerBy"] == "MarkPrice"
    stop = d.projector.trading_stop(1, "BTCUSDT", 0)
    assert (stop.trailing_stop_ticks, stop.sl_trigger_by) == (1000, int(TriggerBy.MARK_PRICE))
    d.market(1, "sell", "0.5", reduce_only=True)  # closed by hand: the stops go
    assert d.projector.open_orders(1) == []
    gone = [d.row(r.order_id) for r in legs.values()]
    assert {(g["orderStatus"], g["cancelType"]) for g in gone} == {
        ("Deactivated", "CancelByTpSlTsClear")}
    assert d.projector.trading_stop(1, "BTCUSDT", 0).take_profit_ticks == 0


def test_partial_pair_cancel_types_name_the_leg_that_fired() -> None:
    d = Projected()
    book(d)
    d.market(1, "buy", "0.5")
    d.trading_stop(1, tp="30040", sl="29000", size="0.2", tpsl_mode=TpSlMode.PARTIAL)
    legs = {r.stop_order_type: r.order_id for r in d.projector.open_orders(1)}
    d.market(2, "buy", "3.5")  # the last price reaches 30040: the TP fires
    assert d.row(legs[int(StopOrderType.PARTIAL_TAKE_PROFIT)])["orderStatus"] == "Filled"
    sl = d.row(legs[int(StopOrderType.PARTIAL_STOP_LOSS)])
    assert (sl["orderStatus"], sl["cancelType"]) == (
        "Deactivated", "CancelByOCOSlCanceledByTpTriggered")


def test_self_trade_executions_have_distinct_ids() -> None:
    d = Projected()
    book(d)
    d.limit(1, "sell", "30005", "0.1")
    d.limit(1, "buy", "30005", "0.1")
    ids = [e.exec_id for e in d.last.executions]
    assert len(ids) == 2 and len(set(ids)) == 2


def _same(record: OrderRecord, order: object) -> bool:
    return (record.qty_lots, record.price_ticks or 0) == (
        order.qty_lots, order.price_ticks)  # type: ignore[attr-defined]


def test_projection_matches_the_engine_after_random_commands() -> None:
    """Open records are exactly the engine's resting + waiting orders (seedable from it)."""
    rng = random.Random(5)
    d = Projected()
    book(d)
    executions: list[ExecutionRecord] = []
    for _ in range(400):
        account = rng.choice([1, 2, 3])
        price = str(30000 + 10 * rng.randint(-6, 6))
        roll = rng.random()
        if roll < 0.3:
            d.limit(account, rng.choice(["buy", "sell"]), price, "0.1")
        elif roll < 0.45:
            d.market(account, rng.choice(["buy", "sell"]), "0.2")
        elif roll < 0.6:
            side = rng.choice(["buy", "sell"])
            d.conditional(account, side, "0.1", price, direction=rng.choice([1, 2]))
        elif roll < 0.7 and d.position(account) and d.position(account).size_lots:
            d.trading_stop(account, tp=None, sl=None, trailing=str(rng.choice([20, 50])))
        elif roll < 0.8:
            d.cancel_all(account)
        else:
            d.mark(price)
        executions += d.last.executions
    engine = d.engine
    users = {**{i: o for i, o in engine.open_orders.items() if o.account_id in (1, 2, 3)},
             **{i: o for i, o in engine.stops.waiting.orders.items()
                if o.account_id in (1, 2, 3)}}
    mine = {i: r for i, r in d.projector.open.items() if r.account_id in (1, 2, 3)}
    assert set(mine) == set(users)
    assert all(_same(mine[i], users[i]) for i in users)
    assert len({e.exec_id for e in executions}) == len(executions)


class _Lines:
    """A record sink that keeps only the ledger lines."""

    def __init__(self) -> None:
        self.ledger_ids: list[str] = []

    def order_final(self, record: object) -> None: ...

    def execution(self, record: object) -> None: ...

    def closed_pnl(self, record: object) -> None: ...

    def ledger(self, record: LedgerRecord) -> None:
        self.ledger_ids.append(record.entry_id)


def test_a_self_trade_writes_two_ledger_lines_with_distinct_ids() -> None:
    d = Projected()
    book(d)
    lines = _Lines()
    d.projector.sink = lines  # type: ignore[assignment]
    d.limit(1, "sell", "30005", "0.1")
    d.limit(1, "buy", "30005", "0.1")
    assert len(lines.ledger_ids) == 2 and len(set(lines.ledger_ids)) == 2
