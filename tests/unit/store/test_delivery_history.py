"""A dated future's delivery in the history tables (next-mechanics §2.5, §2.7).

The read side's one fold turns each `PositionDelivered` into a delivery-record row, a
closed-P&L row (execType Delivery) and an execution (execType Delivery); the wallet line
is a transaction-log row of type DELIVERY. The REST objects render them as Bybit's.
"""

from __future__ import annotations

from decimal import Decimal

from perpx import readside
from perpx.api import wire
from perpx.bus import BatchCodec, Durable, EventBatch
from perpx.core.commands import Deposit, IndexPrice, ListInstrument, PlaceOrder, Tick
from perpx.core.engine import Engine
from perpx.core.enums import OrderType, Side
from perpx.core.instruments import spec_record
from perpx.instruments import FUTURES_TABLE, load_instruments
from perpx.store import open_history
from perpx.store.codec import CommandCodec
from perpx.store.history import History
from support.builders import btcusdt

FUTURE = load_instruments(FUTURES_TABLE)[0]
T = FUTURE.delivery_time_ms
USDT = 10**8


class Owner:
    """The read side of a test: `readside.fresh`'s models and the instruments."""

    def __init__(self, specs: list) -> None:
        empty = readside.fresh(specs)
        self.specs = {spec.symbol: spec for spec in specs}
        self.read_seq = 0
        self.projector = empty.projector
        self.tickers = empty.tickers
        self.klines = empty.klines
        self.funding = empty.funding
        self.books = empty.books


def run(history: History, *, listed: bool) -> Owner:
    """Trade 0.5 BTC of the future at 60,000 and deliver it at 61,089.95 (the E6 series).

    With `listed` the future is not in the table: the operator lists it first.
    """
    table = [btcusdt()] if listed else [btcusdt(), FUTURE]
    engine = Engine(table)
    owner = Owner(table)
    symbol = FUTURE.symbol
    commands = [Deposit(1, T - 10**7, 1, "USDT", 10**6 * USDT),
                Deposit(2, T - 10**7, 2, "USDT", 10**6 * USDT)]
    if listed:
        commands.append(ListInstrument(3, T - 10**7, spec_record(FUTURE)))
    seq = len(commands)
    commands += [IndexPrice(seq + 1, T - 10**7, symbol, 600_000),
                 PlaceOrder(seq + 2, T - 10**7, 2, symbol, Side.SELL, OrderType.LIMIT, 500,
                            600_000),
                 PlaceOrder(seq + 3, T - 10**7, 1, symbol, Side.BUY, OrderType.LIMIT, 500,
                            600_000)]
    seq += 3
    for k in range(1_800):
        seq += 1
        commands.append(IndexPrice(seq, T - 1_800_000 + 1_000 * k, symbol, 610_000 + k))
    commands.append(Tick(seq + 1, T))
    for command in commands:
        readside.fold(owner, command, engine.apply(command), history)
        history.projected(command.seq)
    history.flush().result()
    return owner


def check(history: History, owner: Owner) -> None:
    spec = owner.specs[FUTURE.symbol]
    page = history.deliveries(1)
    (row,) = page.records
    assert wire.delivery_record(row, spec) == {
        "deliveryTime": T, "symbol": "BTCUSDT-25DEC26", "side": "Buy", "position": "0.500",
        "entryPrice": "60000.00", "deliveryPrice": "61089.95000000", "strike": "",
        "fee": "15.2724875", "deliveryRpl": str(Decimal("544.975") - Decimal("15.2724875"))}
    (short,) = history.deliveries(2).records
    assert wire.delivery_record(short, spec)["side"] == "Sell"
    assert wire.delivery_record(short, spec)["deliveryRpl"] == "-560.2474875"
    (closed,) = history.closed_pnls(1, symbol=FUTURE.symbol).records
    shown = wire.closed_pnl(closed, spec)
    assert (shown["execType"], shown["side"], shown["closeFee"]) == ("Delivery", "Sell",
                                                                     "15.2724875")
    # Closed P&L: the price P&L less the delivery fee and the opening (taker) fee, 16.5 USDT.
    assert shown["closedPnl"] == str(Decimal("544.975") - Decimal("15.2724875")
                                     - Decimal("16.5"))
    (execution,) = history.executions(1, exec_type="Delivery").records
    assert (execution.price_ticks, execution.fee_atoms) == (610_900, 1_527_248_750)
    (line,) = history.ledger_entries(1, kind="DELIVERY").records
    assert (line.cash_flow_atoms, line.fee_atoms) == (54_497_500_000, 1_527_248_750)
    assert line.change_atoms == line.cash_flow_atoms - line.fee_atoms


def test_a_delivery_is_folded_into_records_closed_pnl_executions_and_the_ledger(
        location: str) -> None:
    history = open_history(location)
    owner = run(history, listed=False)
    check(history, owner)
    history.close()


def test_a_listed_future_is_learned_by_the_read_side_and_delivers_alike(
        location: str) -> None:
    history = open_history(location)
    owner = run(history, listed=True)
    assert owner.specs[FUTURE.symbol] == FUTURE
    assert FUTURE.symbol in owner.books.mirrors
    check(history, owner)
    history.close()



def test_the_new_commands_and_events_round_trip_through_the_journal_and_bus_codecs() -> None:
    engine = Engine([btcusdt()])
    listing = ListInstrument(1, T - 10**7, spec_record(FUTURE))
    codec = CommandCodec()
    assert codec.decode(codec.encode(listing)) == listing
    flow = [listing, Deposit(2, T - 10**7, 1, "USDT", 10**6 * USDT),
            Deposit(3, T - 10**7, 2, "USDT", 10**6 * USDT),
            IndexPrice(4, T - 10**7, FUTURE.symbol, 600_000),
            PlaceOrder(5, T - 10**7, 2, FUTURE.symbol, Side.SELL, OrderType.LIMIT, 5, 600_000),
            PlaceOrder(6, T - 10**7, 1, FUTURE.symbol, Side.BUY, OrderType.LIMIT, 5, 600_000),
            Tick(7, T)]
    entries = [Durable(c.seq, c.ts_ms, engine.apply(c)) for c in flow]
    kinds = {type(e).__name__ for entry in entries for e in entry.events}
    assert {"InstrumentListed", "InstrumentStatusChanged", "PositionDelivered",
            "FuturesDelivered"} <= kinds
    batch = EventBatch.of(entries)
    assert BatchCodec().decode(BatchCodec().encode(batch)) == batch
