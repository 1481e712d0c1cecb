"""The order projector moves its records through the core's lifecycle table, not its own.

Fed every command's events, each open record has the status the engine's order has, each
finished record a final status of the table, and a happening the table forbids is a bug.
"""

from __future__ import annotations

import random

import pytest

from perpx.core import lifecycle
from perpx.core.commands import Command
from perpx.core.enums import OrderStatus, StopOrderType, TriggerBy
from perpx.core.errors import InvariantViolation
from perpx.core.events import Event, OrderAccepted, OrderTriggered
from perpx.store.records import Projection, Projector, is_final
from support.builders import Driver, btcusdt, of_type


class Projected(Driver):
    """A Driver whose every command is also folded into a projector."""

    def __init__(self, funded: dict[int, str] | None = None) -> None:
        self.projector = Projector([btcusdt()])
        self.last = Projection()
        super().__init__(btcusdt(), funded=funded)

    def apply(self, command: Command) -> list[Event]:
        events = super().apply(command)
        self.last = self.projector.project(command, events)
        return events

    def engine_statuses(self) -> dict[int, OrderStatus]:
        """The status of every user order the engine holds, resting or waiting."""
        engine = self.engine
        held = [*engine.open_orders.values(), *engine.stops.waiting.orders.values()]
        return {order.order_id: order.status for order in held if order.account_id > 0}

    def projected_statuses(self) -> dict[int, int]:
        return {order_id: record.status for order_id, record in self.projector.open.items()
                if record.account_id > 0}


@pytest.mark.parametrize("status", list(OrderStatus), ids=[s.name for s in OrderStatus])
def test_final_statuses_of_the_store_are_the_tables(status: OrderStatus) -> None:
    # Act / Assert: final exactly when the table has no way out of the status
    assert is_final(int(status)) is (status in lifecycle.FINAL)
    assert (status in lifecycle.FINAL) is not any(
        (status, happening) in lifecycle.TRANSITIONS for happening in lifecycle.Happening)


def test_records_start_where_the_core_starts_its_orders() -> None:
    # Arrange
    d = Projected()

    # Act
    plain = of_type(d.limit(1, "buy", "50000", "0.01"), OrderAccepted)[0].order_id
    d.conditional(1, "buy", "0.01", "60000", direction=1, price="60000")
    [waiting] = d.waiting(1)

    # Assert
    assert d.projector.open[plain].status == lifecycle.START == d.engine.open_orders[plain].status
    assert (d.projector.open[waiting.order_id].status == lifecycle.START_CONDITIONAL
            == waiting.status)


def test_projected_statuses_follow_the_engine_command_by_command() -> None:
    # Arrange: three traders and a book around 30,000; a small account 4 whose big
    # conditional orders are refused when they fire (Untriggered -> Triggered -> Cancelled)
    rng = random.Random(11)
    d = Projected(funded={**dict.fromkeys(range(1, 4), "10000000"), 4: "200",
                          8: "10000000", 9: "10000000"})
    for step in range(1, 6):
        d.limit(8, "sell", str(30000 + 10 * step), "1")
        d.limit(9, "buy", str(30000 - 10 * step), "1")
    d.mark("30000")
    finished: dict[int, int] = {}

    # Act / Assert, after each command
    for _ in range(500):
        account = rng.choice([1, 2, 3, 4])
        price = str(30000 + 10 * rng.randint(-6, 6))
        side = rng.choice(["buy", "sell"])
        roll = rng.random()
        mine = [o for o in d.engine.open_orders.values() if o.account_id == account]
        if roll < 0.3:
            d.limit(account, side, price, rng.choice(["0.05", "0.1", "0.3"]))
        elif roll < 0.42:
            d.market(account, side, "0.2")
        elif roll < 0.6:
            d.conditional(account, side, "0.1" if account != 4 else "1", price,
                          direction=rng.choice([1, 2]))
        elif roll < 0.7 and mine:
            order = rng.choice(mine)
            d.amend(account, order.order_id, qty=rng.choice(["0.2", "0.4"]))
        elif roll < 0.78 and mine:
            d.cancel(account, rng.choice(mine).order_id)
        elif roll < 0.84:
            d.cancel_all(account)
        else:
            d.mark(price)
        assert d.projected_statuses() == d.engine_statuses()
        for recent in d.projector.recent.values():
            finished.update((order_id, r.status) for order_id, r in recent.items())

    # Assert: every finished order ended in a final status, and all the ways out were seen
    assert finished and all(OrderStatus(s) in lifecycle.FINAL for s in finished.values())
    assert {OrderStatus(s) for s in finished.values()} == {
        OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.DEACTIVATED}


def test_a_happening_the_table_forbids_is_a_bug_in_the_projector_too() -> None:
    # Arrange: a plain resting order, which no trigger may fire
    d = Projected()
    events = d.limit(1, "buy", "50000", "0.01")
    order_id = of_type(events, OrderAccepted)[0].order_id
    seq, ts = d.stamp()
    bogus = OrderTriggered(seq, ts, order_id, 1, "BTCUSDT", StopOrderType.STOP,
                           TriggerBy.LAST_PRICE, 500000, 500000)

    # Act / Assert
    with pytest.raises(InvariantViolation, match="TRIGGER is illegal for an order in status NEW"):
        d.projector.project(d.log[-1], [bogus])
