"""Funding through the engine: exact zero-sum settlement, timing edges, interval changes, marks."""

from __future__ import annotations

from perpx.convert import to_atoms, to_ticks
from perpx.core import TimeInForce
from perpx.core.account.accounts import INSURANCE_FUND_ID
from perpx.core.commands import IndexPrice, SetFundingInterval, Tick
from perpx.core.enums import BalanceReason, MarginMode
from perpx.core.events import (
    BalanceChanged,
    FundingIntervalSet,
    FundingPaid,
    FundingSettled,
    MarkPriceUpdated,
    PremiumIndexSampled,
)
from support.builders import Driver, of_type

HOUR_MS = 3_600_000
T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC, a multiple of 8 h


def at(d: Driver, ts_ms: int) -> None:
    """Stamp the driver's next command at `ts_ms` (it adds one before stamping)."""
    d.ts_ms = ts_ms - 1


def index(d: Driver, price: str) -> list:
    seq, ts = d.stamp()
    return d.apply(IndexPrice(seq, ts, "BTCUSDT", to_ticks(d.spec(), price)))


def tick(d: Driver) -> list:
    seq, ts = d.stamp()
    return d.apply(Tick(seq, ts))


def hourly_market(start_ms: int) -> Driver:
    """BTCUSDT at 50,000.3 with hourly funding and the clock at `start_ms`."""
    d = Driver(start_ts_ms=start_ms)
    seq, ts = d.stamp()
    assert of_type(d.apply(SetFundingInterval(seq, ts, "BTCUSDT", 60)), FundingIntervalSet)
    index(d, "50000.3")
    return d


def test_funding_is_exact_and_zero_sum_with_the_remainder_to_the_fund() -> None:
    d = hourly_market(T0 + 10 * 60_000)
    d.limit(2, "sell", "50000.3", "0.001")
    d.limit(1, "buy", "50000.3", "0.003", tif=TimeInForce.IOC)
    d.limit(3, "sell", "50000.3", "0.002")
    d.limit(1, "buy", "50000.3", "0.002")
    at(d, T0 + HOUR_MS)
    events = tick(d)
    [settled] = of_type(events, FundingSettled)
    paid = {e.account_id: e.amount_atoms for e in of_type(events, FundingPaid)}
    # Interest alone (no premium sample was taken): 0.01% / 8 = 0.00125% per hour.
    assert settled.rate == 1_250
    value = lambda lots: d.spec().notional_atoms(settled.mark_price_ticks, lots)  # noqa: E731
    assert paid[1] == -(-value(3) * 1_250 // 10**8)  # the long pays, rounded up
    assert paid[2] == -(value(1) * 1_250 // 10**8)  # shorts receive, rounded down
    assert paid[3] == -(value(2) * 1_250 // 10**8)
    assert settled.remainder_atoms == sum(paid.values()) >= 0
    assert d.wallet(INSURANCE_FUND_ID) == settled.remainder_atoms
    assert d.position(1).realized_pnl_atoms < -paid[1]  # fees and funding both booked


def test_a_position_opened_at_the_timestamp_pays_nothing_and_one_closed_then_pays() -> None:
    d = hourly_market(T0 + 30 * 60_000)
    d.limit(2, "sell", "50000.3", "0.002")
    d.limit(1, "buy", "50000.3", "0.001")  # account 1 long before the timestamp
    at(d, T0 + HOUR_MS)
    events = d.limit(3, "buy", "50000.3", "0.001")  # stamped exactly at the timestamp
    paid = {e.account_id for e in of_type(events, FundingPaid)}
    assert paid == {1, 2}  # account 3's position came after the settlement
    assert [type(e).__name__ for e in events][:1] == ["BalanceChanged"]  # funding went first


def test_changing_the_interval_moves_the_next_timestamp_onto_the_new_grid() -> None:
    d = Driver(start_ts_ms=T0 + 90 * 60_000)  # 01:30
    index(d, "50000")
    seq, ts = d.stamp()
    [changed] = of_type(d.apply(SetFundingInterval(seq, ts, "BTCUSDT", 240)), FundingIntervalSet)
    assert changed.next_funding_ms == T0 + 4 * HOUR_MS
    seq, ts = d.stamp()
    [changed] = of_type(d.apply(SetFundingInterval(seq, ts, "BTCUSDT", 60)), FundingIntervalSet)
    assert changed.next_funding_ms == T0 + 2 * HOUR_MS


def test_funding_paid_by_an_isolated_position_comes_from_margin_when_nothing_is_free() -> None:
    d = Driver(start_ts_ms=T0 + 10 * 60_000, funded={1: "5.1", 2: "100000"})
    seq, ts = d.stamp()
    d.apply(SetFundingInterval(seq, ts, "BTCUSDT", 60))
    index(d, "50000")
    d.margin_mode(1, MarginMode.ISOLATED)
    d.limit(2, "sell", "50000", "0.001")
    d.limit(1, "buy", "50000", "0.001")  # margin 5.02475 of 5.1 - 0.0275 fee: 0.04775 free
    margin = d.position(1).margin_atoms
    at(d, T0 + HOUR_MS)
    events = tick(d)
    [mine] = [e for e in of_type(events, FundingPaid) if e.account_id == 1]
    assert mine.amount_atoms > 0
    free = to_atoms("5.1") - to_atoms("0.0275") - margin
    assert d.position(1).margin_atoms == margin - max(0, mine.amount_atoms - free)


def test_ticks_sample_the_premium_each_minute_and_move_the_mark() -> None:
    d = Driver(start_ts_ms=T0 + 60_000)
    index(d, "50000")
    d.limit(2, "sell", "50100", "12")  # deep enough for the 10 BTC impact notional
    d.limit(3, "buy", "50050", "12")   # impact bid 50,050 above the index: a premium
    samples = []
    for minute in range(2, 6):
        at(d, T0 + minute * 60_000)
        samples += of_type(tick(d), PremiumIndexSampled)
    assert [s.premium_rate for s in samples] == [100_000] * 4  # 50 / 50,000 = 0.1%
    assert samples[-1].predicted_rate == 50_000  # 0.1% + clamp(0.01% - 0.1%) = 0.05%
    mark = d.engine.mark_price["BTCUSDT"]
    assert mark > to_ticks(d.spec(), "50000")  # the basis MA and decaying basis lift it
    assert of_type(index(d, "50010"), MarkPriceUpdated)


def test_funding_moves_money_only_through_wallet_events() -> None:
    d = hourly_market(T0 + 50 * 60_000)
    d.limit(2, "sell", "50000.3", "0.01")
    d.limit(1, "buy", "50000.3", "0.01")
    at(d, T0 + HOUR_MS)
    events = tick(d)
    funding = [e for e in of_type(events, BalanceChanged) if e.reason is BalanceReason.FUNDING]
    assert sum(e.change_atoms for e in funding) == 0


def test_a_position_closed_by_a_command_at_the_timestamp_still_pays() -> None:
    d = hourly_market(T0 + 30 * 60_000)
    d.limit(2, "sell", "50000.3", "0.001")
    d.limit(1, "buy", "50000.3", "0.001")
    d.limit(3, "buy", "50000.3", "0.001")  # a bid for account 1 to close into
    at(d, T0 + HOUR_MS)
    events = d.limit(1, "sell", "50000.3", "0.001")  # closes, stamped exactly at the timestamp
    assert {e.account_id for e in of_type(events, FundingPaid)} == {1, 2}
    assert d.position(1).size_lots == 0
    [settled] = of_type(events, FundingSettled)
    assert settled.next_funding_ms == T0 + 2 * HOUR_MS
    assert settled.predicted_rate == 1_250  # interest alone until the next premium sample
