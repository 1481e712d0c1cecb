"""A dated USDT future traded through its delivery (next-mechanics §2.2-§2.6, issue #16 item 2).

Accounts in cross, isolated and hedge mode hold positions of BTCUSDT-25DEC26 while a
perpetual trades beside it; orders, a conditional order and TP/SL wait. The index runs the
E6 series through the last 30 minutes, so the delivery price is 61,089.95. At 08:00 every
order is cancelled (CancelBySettle), every position settles at DP with the 0.05% fee, each
coin is conserved (wallets + fee account + insurance fund = deposits), the perpetual pays
funding and the future none, and orders after delivery are refused with Bybit's 110074.
"""

from __future__ import annotations

import dataclasses
from decimal import ROUND_DOWN, Decimal

from perpx.bybit.retcodes import bybit_code
from perpx.core.codes import RejectCode
from perpx.core.commands import IndexPrice, Tick
from perpx.core.engine import Engine
from perpx.core.enums import BalanceReason, CancelReason, InstrumentStatus, MarginMode, PositionMode
from perpx.core.events import (
    BalanceChanged,
    Event,
    FundingPaid,
    FundingSettled,
    FuturesDelivered,
    InstrumentStatusChanged,
    Liquidated,
    OrderAccepted,
    OrderCancelled,
    OrderDeactivated,
    OrderRejected,
    PositionDelivered,
    PremiumIndexSampled,
)
from perpx.instruments import FUTURES_TABLE, load_instruments
from perpx.store.records import CANCEL_REJECT_REASONS
from support.builders import Driver, btcusdt, of_type

FUTURE = load_instruments(FUTURES_TABLE)[0]  # BTCUSDT-25DEC26, delivering 2026-12-25 08:00
SYMBOL = FUTURE.symbol
T = FUTURE.delivery_time_ms
DP = Decimal("61089.95")  # E6
FEE_RATE = Decimal("0.0005")
E8 = Decimal(10) ** 8
DEPOSIT = "10000000"


def trade(d: Driver, buyer: int, seller: int, price: str, qty: str, *,
          buy_idx: int = 0, sell_idx: int = 0) -> None:
    d.limit(seller, "sell", price, qty, symbol=SYMBOL, position_idx=sell_idx)
    d.limit(buyer, "buy", price, qty, symbol=SYMBOL, position_idx=buy_idx)


def window_indexes(d: Driver, symbol: str = SYMBOL) -> list[Event]:
    """The E6 index series, one a second from T - 30 min: 61,000.0 rising by 0.1."""
    events: list[Event] = []
    for k in range(1_800):
        seq, _ = d.stamp()
        d.ts_ms = T - 1_800_000 + 1_000 * k
        events += d.apply(IndexPrice(seq, d.ts_ms, symbol, 610_000 + k))
    return events


def deliver(d: Driver) -> list[Event]:
    seq, _ = d.stamp()
    d.ts_ms = T
    return d.apply(Tick(seq, T))


def setup() -> tuple[Driver, list[tuple[int, int, Decimal, Decimal]]]:
    """Trade the future; return the driver and (account, idx, signed qty, entry) held."""
    d = Driver(FUTURE, btcusdt(), start_ts_ms=T - 3 * 3_600_000)
    d.index("60000", symbol=SYMBOL)
    d.index("60000", symbol="BTCUSDT")
    d.margin_mode(3, MarginMode.ISOLATED)
    d.position_mode(4, PositionMode.HEDGE, symbol=SYMBOL)
    trade(d, 1, 2, "60000", "0.5")  # 1 long, 2 short (cross)
    trade(d, 5, 3, "60500", "0.2")  # 5 long, 3 short (isolated)
    trade(d, 4, 2, "59800", "0.1", buy_idx=1)  # 4 long on its buy side (hedge)
    trade(d, 6, 4, "59900", "0.05", sell_idx=2)  # 4 short on its sell side, 6 long
    # The perpetual beside it, so funding can be seen to skip the future.
    d.limit(7, "sell", "60000", "1", symbol="BTCUSDT")
    d.limit(8, "buy", "60000", "1", symbol="BTCUSDT")
    # Orders that must not survive delivery: resting, conditional, TP/SL, attached TP/SL.
    d.limit(9, "buy", "55000", "1", symbol=SYMBOL)
    d.conditional(9, "buy", "0.1", "65000", direction=1, symbol=SYMBOL)
    d.trading_stop(1, tp="70000", sl="50000", symbol=SYMBOL)
    d.limit(2, "sell", "66000", "0.2", symbol=SYMBOL, take_profit_ticks=500_000)
    # (account, idx, signed qty, entry value = sum of q_i x p_i); account 2 sold 0.5 @
    # 60,000 and 0.1 @ 59,800.
    held = [(1, 0, Decimal("0.5"), Decimal(30000)),
            (2, 0, Decimal("-0.6"), Decimal("0.5") * 60000 + Decimal("0.1") * 59800),
            (3, 0, Decimal("-0.2"), Decimal(12100)), (5, 0, Decimal("0.2"), Decimal(12100)),
            (4, 1, Decimal("0.1"), Decimal(5980)), (4, 2, Decimal("-0.05"), Decimal(2995)),
            (6, 0, Decimal("0.05"), Decimal(2995))]
    return d, held


def expected(qty: Decimal, entry_value: Decimal) -> tuple[int, int]:
    """(P&L, fee) in atoms by the spec's rule: q(DP - EP)·side exactly, fee truncated."""
    pnl = qty * DP - (entry_value if qty > 0 else -entry_value)
    fee = (abs(qty) * DP * FEE_RATE * E8).to_integral_value(ROUND_DOWN)
    return int(pnl * E8), int(fee)


def balances(engine: Engine) -> dict[int, int]:
    return {account_id: account.balances.get("USDT", 0)
            for account_id, account in engine.clearing.accounts.items()}


def test_every_account_settles_at_the_delivery_price_with_the_fee_and_money_is_conserved(
        ) -> None:
    d, held = setup()
    window_events = window_indexes(d)
    assert not of_type(window_events, PremiumIndexSampled)
    before = balances(d.engine)
    events = deliver(d)

    statuses = [e.status for e in of_type(events, InstrumentStatusChanged)]
    assert statuses == [InstrumentStatus.DELIVERING, InstrumentStatus.CLOSED]
    (done,) = of_type(events, FuturesDelivered)
    assert done.delivery_price_e8 == int(DP * E8) and done.samples == 1_800
    assert done.remainder_atoms == 0  # 3-decimal lots at a 2-decimal DP: exact

    delivered = {(e.account_id, e.position_idx): e for e in of_type(events, PositionDelivered)}
    assert sorted(delivered) == sorted((a, i) for a, i, _, _ in held)
    total_fee = 0
    change: dict[int, int] = {}
    for account, idx, qty, entry in held:
        pnl, fee = expected(qty, entry)
        row = delivered[account, idx]
        assert (row.pnl_atoms, row.fee_atoms) == (pnl, fee), (account, idx)
        total_fee += fee
        change[account] = change.get(account, 0) + pnl - fee
        position = d.position(account, idx, symbol=SYMBOL)
        assert position.size_lots == 0 and position.margin_atoms == 0
    after = balances(d.engine)
    for account, moved in change.items():
        assert after[account] - before[account] == moved
    assert after[-1] - before[-1] == total_fee  # the fee account
    lines = [e for e in of_type(events, BalanceChanged) if e.reason is BalanceReason.DELIVERY]
    assert sum(line.fee_atoms for line in lines) == total_fee
    # Per coin: every wallet, the fee account and the insurance fund hold the deposits
    # (the perpetual's long and short entry values cancel in the cash view).
    assert sum(after.values()) == 9 * int(Decimal(DEPOSIT) * E8)
    d.engine.check_invariants()


def test_open_orders_conditional_orders_and_tpsl_are_cancelled_by_settle() -> None:
    d, _ = setup()
    window_indexes(d)
    events = deliver(d)
    cancelled = of_type(events, OrderCancelled)
    deactivated = of_type(events, OrderDeactivated)
    assert {e.account_id for e in cancelled} == {2, 9}
    assert all(e.reason is CancelReason.BY_SETTLE for e in cancelled + deactivated)
    assert {e.account_id for e in deactivated} == {1, 9}  # TP/SL and the conditional order
    # The TP attached to account 2's unfilled order went with it.
    assert not d.engine.stops.waiting.attachments
    assert not d.engine.orders_of(9, SYMBOL) and not d.waiting(9, SYMBOL)
    assert not d.waiting(1, SYMBOL) and not d.waiting(2, SYMBOL)
    assert CANCEL_REJECT_REASONS[int(CancelReason.BY_SETTLE)] == ("EC_NoError",
                                                                  "CancelBySettle")
    # Cancelled before the positions settle.
    first_delivery = next(i for i, e in enumerate(events) if type(e) is PositionDelivered)
    assert all(events.index(e) < first_delivery for e in cancelled + deactivated)


def test_orders_after_delivery_are_refused_with_110074() -> None:
    d, _ = setup()
    window_indexes(d)
    deliver(d)
    for events in (d.limit(1, "buy", "61000", "0.1", symbol=SYMBOL),
                   d.market(1, "sell", "0.1", symbol=SYMBOL, reduce_only=True),
                   d.conditional(1, "buy", "0.1", "65000", direction=1, symbol=SYMBOL)):
        (rejected,) = of_type(events, OrderRejected)
        assert rejected.reason is RejectCode.CONTRACT_NOT_LIVE
    assert bybit_code(RejectCode.CONTRACT_NOT_LIVE)[0] == 110074
    assert d.engine.delivery.status(SYMBOL) is InstrumentStatus.CLOSED
    # The perpetual trades on.
    assert of_type(d.limit(1, "buy", "60000", "0.1", symbol="BTCUSDT"), OrderAccepted)


def test_the_perpetual_pays_funding_at_08_00_and_the_future_none() -> None:
    d, _ = setup()
    events = window_indexes(d) + deliver(d)
    funded = {e.symbol for e in of_type(events, FundingSettled)}
    assert funded == {"BTCUSDT"}
    assert {e.symbol for e in of_type(events, FundingPaid)} <= {"BTCUSDT"}


def test_a_replay_from_a_snapshot_taken_in_the_window_delivers_alike() -> None:
    d, _ = setup()
    window_indexes(d)
    deliver(d)
    specs = [FUTURE, btcusdt()]
    cut = len(d.log) - 900  # mid-window: half the samples are in the snapshot
    first = Engine(specs)
    for command in d.log[:cut]:
        first.apply(command)
    restored = Engine.from_snapshot(specs, first.to_snapshot())
    for command in d.log[cut:]:
        restored.apply(command)
    assert restored.state_hash() == d.engine.state_hash()


def test_n5_a_close_only_window_refuses_opening_orders_only() -> None:
    spec = dataclasses.replace(FUTURE, close_only_before_delivery_ms=600_000)
    d = Driver(spec, start_ts_ms=T - 3_600_000)
    d.index("60000", symbol=SYMBOL)
    trade(d, 1, 2, "60000", "0.5")
    d.ts_ms = T - 600_002  # the next command is stamped 1 ms later
    assert of_type(d.limit(3, "buy", "59000", "0.1", symbol=SYMBOL), OrderAccepted)
    (refused,) = of_type(d.limit(3, "buy", "59000", "0.1", symbol=SYMBOL), OrderRejected)
    assert refused.reason is RejectCode.CLOSE_ONLY_BEFORE_DELIVERY
    assert bybit_code(refused.reason)[0] == 110042
    assert of_type(d.limit(1, "sell", "61000", "0.1", symbol=SYMBOL, reduce_only=True),
                   OrderAccepted)
    # The order accepted before the window may shrink in it, not grow.
    (resting,) = d.engine.orders_of(3, SYMBOL)
    (grown,) = of_type(d.amend(3, resting.order_id, qty="0.2", symbol=SYMBOL), OrderRejected)
    assert grown.reason is RejectCode.CLOSE_ONLY_BEFORE_DELIVERY
    assert not of_type(d.amend(3, resting.order_id, qty="0.05", symbol=SYMBOL), OrderRejected)


def test_n5_by_default_a_future_trades_until_its_delivery_time() -> None:
    d = Driver(FUTURE, start_ts_ms=T - 100)
    d.index("60000", symbol=SYMBOL)
    d.ts_ms = T - 2  # the order is stamped T - 1
    assert of_type(d.limit(3, "buy", "59000", "0.1", symbol=SYMBOL), OrderAccepted)


def test_the_futures_mark_is_the_index_times_one_plus_the_basis_rate() -> None:
    d = Driver(FUTURE, start_ts_ms=T - 3_600_000)
    d.index("60000", symbol=SYMBOL)
    d.limit(1, "buy", "60100", "20", symbol=SYMBOL)  # the impact notional is 10 BTC
    d.limit(2, "sell", "60300", "20", symbol=SYMBOL)
    events: list[Event] = []
    for _ in range(3):
        seq, _ = d.stamp()
        d.ts_ms += 1_000
        events += d.apply(Tick(seq, d.ts_ms))
    # basisRate = (60,200 - 60,000) / 60,000 = 0.00333333; mark = 60,000 x 1.00333333.
    assert d.engine.mark_price[SYMBOL] == 602_000
    assert not of_type(events, PremiumIndexSampled)
    assert d.engine.pricing.basis_rate[SYMBOL].average_rate() == (3 * 333_333, 3)


def test_without_any_sample_the_future_delivers_at_the_last_index() -> None:
    d = Driver(FUTURE, start_ts_ms=T - 7_200_000)
    d.index("60000", symbol=SYMBOL)
    trade(d, 1, 2, "60000", "0.5")
    (done,) = of_type(deliver(d), FuturesDelivered)
    assert (done.samples, done.delivery_price_e8) == (0, 6_000_000_000_000)
    assert d.position(1, symbol=SYMBOL).size_lots == 0


def test_n20_the_running_delivery_average_liquidates_as_the_mark_would() -> None:
    # The index sat at 50,000 for the first 15 minutes of the window, then came back to
    # 60,000: the mark follows the index, the delivery average lags at ~52,500.
    d = Driver(FUTURE, start_ts_ms=T - 1_800_100)
    d.margin_mode(1, MarginMode.ISOLATED)
    for k in range(1_200):
        seq, _ = d.stamp()
        d.ts_ms = T - 1_800_000 + 1_000 * k
        d.apply(IndexPrice(seq, d.ts_ms, SYMBOL, 500_000 if k < 900 else 600_000))
    trade(d, 1, 2, "60000", "0.5")  # a 10x isolated long: liquidation price ~54,300
    assert d.position(1, symbol=SYMBOL).size_lots == 500
    assert d.engine.mark_price[SYMBOL] == 600_000
    seq, _ = d.stamp()
    d.ts_ms = T - 1_800_000 + 1_200_000
    events = d.apply(IndexPrice(seq, d.ts_ms, SYMBOL, 600_000))
    (liquidated,) = of_type(events, Liquidated)
    average = (900 * 500_000 + 301 * 600_000 + 1_201 // 2) // 1_201  # to the nearest tick
    assert (liquidated.account_id, liquidated.mark_price_ticks) == (1, average)
    assert d.position(1, symbol=SYMBOL).size_lots == 0
    assert d.engine.mark_price[SYMBOL] == 600_000  # the mark itself never moved


def test_n20_outside_the_window_the_average_triggers_nothing() -> None:
    d = Driver(FUTURE, start_ts_ms=T - 3_600_000)
    d.margin_mode(1, MarginMode.ISOLATED)
    d.index("50000", symbol=SYMBOL)
    d.index("60000", symbol=SYMBOL)
    trade(d, 1, 2, "60000", "0.5")
    assert not of_type(d.index("60000", symbol=SYMBOL), Liquidated)
    assert d.engine.delivery.predicted_price_e8(SYMBOL) is None
