"""Regression: a delivery record's `deliveryTime` is the contract's, however late it is found.

The core delivers a future before the first command stamped at or after its delivery time, so
on a quiet market that command may come hours later (found by
tests/api/test_api_settlements.py, whose clock jumps past the delivery). The record's
`deliveryTime` (ccxt's settlement `timestamp`) is the contract's, as Bybit's is and as
`/v5/market/delivery-price` shows it; the execution keeps the time it happened.
"""

from __future__ import annotations

from perpx.core.commands import Deposit, IndexPrice, PlaceOrder, Tick
from perpx.core.engine import Engine
from perpx.core.enums import OrderType, Side
from perpx.instruments import FUTURES_TABLE, load_instruments
from perpx.store.records import DeliveryRecord, ExecutionRecord, Projector

FUTURE = load_instruments(FUTURES_TABLE)[0]
T = FUTURE.delivery_time_ms
LATE_MS = 3 * 3_600_000


class Sink:
    def __init__(self) -> None:
        self.deliveries: list[DeliveryRecord] = []

    def delivery(self, record: DeliveryRecord) -> None:
        self.deliveries.append(record)

    def __getattr__(self, name: str) -> object:
        return lambda record: None


def test_a_late_delivery_records_the_contracts_delivery_time() -> None:
    engine = Engine([FUTURE])
    sink = Sink()
    projector = Projector([FUTURE], sink=sink)  # type: ignore[arg-type]
    symbol = FUTURE.symbol
    commands = [Deposit(1, T - 10**7, 1, "USDT", 10**14), Deposit(2, T - 10**7, 2, "USDT", 10**14),
                IndexPrice(3, T - 10**7, symbol, 600_000),
                PlaceOrder(4, T - 10**7, 2, symbol, Side.SELL, OrderType.LIMIT, 500, 600_000),
                PlaceOrder(5, T - 10**7, 1, symbol, Side.BUY, OrderType.LIMIT, 500, 600_000),
                Tick(6, T + LATE_MS)]
    executions: list[ExecutionRecord] = []
    for command in commands:
        executions += projector.project(command, engine.apply(command)).executions
    assert len(sink.deliveries) == 2
    assert {record.delivery_ms for record in sink.deliveries} == {T}
    delivered = [e for e in executions if e.exec_type == "Delivery"]
    assert len(delivered) == 2
    assert {(e.seq, e.exec_ms) for e in delivered} == {(6, T + LATE_MS)}
