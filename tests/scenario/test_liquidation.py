"""Liquidation at the mark: isolated and cross, takeover at bankruptcy, insurance fund, ADL."""

from __future__ import annotations

import pytest

from perpx.convert import format_ticks, to_atoms
from perpx.core import OrderAccepted, OrderRejected, RejectCode
from perpx.core.account.accounts import INSURANCE_FUND_ID
from perpx.core.enums import MarginMode
from perpx.core.events import (
    Deleveraged,
    HedgedPairClosed,
    Liquidated,
    OrderCancelled,
    Trade,
)
from perpx.core.risk import liquidation, takeover
from support.builders import Driver, of_type

USDT = to_atoms


def isolated(side: str, fund: str = "0") -> tuple[Driver, int, int]:
    """Account 1 isolated with 1 BTC at 50,000 10x; returns the driver, LP and BP in ticks."""
    d = Driver(funded={1: "10000", 2: "1000000", 3: "1000000", 4: "1000000"})
    if fund != "0":
        d.deposit(INSURANCE_FUND_ID, fund)
    d.margin_mode(1, MarginMode.ISOLATED)
    d.mark("50000")
    other = "sell" if side == "buy" else "buy"
    d.limit(2, other, "50000", "1")
    d.limit(1, side, "50000", "1")
    account = d.engine.clearing.accounts[1]
    liq, bust = liquidation.position_prices(d.engine.clearing, account, d.position(1))
    assert liq is not None and bust is not None
    return d, liq, bust


def mark_ticks(d: Driver, ticks: int) -> list:
    from perpx.core.commands import MarkPrice
    seq, ts = d.stamp()
    return d.apply(MarkPrice(seq, ts, "BTCUSDT", ticks))


@pytest.mark.parametrize("side", ["buy", "sell"], ids=["long", "short"])
def test_liquidation_happens_exactly_at_the_liquidation_price(side: str) -> None:
    d, liq, _ = isolated(side)
    step = -1 if side == "buy" else 1
    assert not of_type(mark_ticks(d, liq - step), Liquidated)  # one tick short of it
    [liquidated] = of_type(mark_ticks(d, liq), Liquidated)
    assert liquidated.mark_price_ticks == liq
    assert d.position(1).size_lots == 0


def test_the_trader_loses_the_position_margin_and_no_more() -> None:
    d, liq, bust = isolated("buy")
    wallet, margin = d.wallet(1), d.position(1).margin_atoms
    d.limit(3, "buy", "45000", "1")  # a bid for the liquidation engine to sell into
    events = mark_ticks(d, liq)
    [liquidated] = of_type(events, Liquidated)
    assert liquidated.bust_price_ticks == bust
    lost = wallet - d.wallet(1)
    assert 0 <= lost - margin < d.spec().atoms_per_tick_lot * 1000  # rounding: under a tick
    assert d.figures(1).wallet_atoms >= 0


def test_a_close_better_than_bankruptcy_credits_the_insurance_fund() -> None:
    d, liq, bust = isolated("buy")
    d.limit(3, "buy", "46000", "1")  # above the bankruptcy price of about 45,0xx
    events = mark_ticks(d, liq)
    [fill] = [t for t in of_type(events, Trade) if t.taker_account_id == INSURANCE_FUND_ID]
    assert fill.price_ticks == 460_000 > bust
    fee = -(-d.spec().notional_atoms(460_000, 1000) * d.spec().taker_fee_rate // 10**8)
    gain = d.spec().notional_atoms(460_000 - bust, 1000)
    # #13 B2: the fund takes over at 45,000 (= 50,000 x (1 - 1/10)) and is paid the trader's
    # reserved fee to close, valued there: 45,000 x 0.055% = 24.75.
    assert bust == 450_000
    assert d.wallet(INSURANCE_FUND_ID) == gain - fee + USDT("24.75")


def test_without_a_buyer_the_position_is_deleveraged_against_the_best_ranked_short() -> None:
    d, liq, bust = isolated("buy")
    # Two shorts from 50,000: account 2 (the original seller, 1 BTC) and account 4 (0.5 BTC).
    d.limit(3, "buy", "50000", "0.5")
    d.limit(4, "sell", "50000", "0.5")
    cancelled = of_type(d.limit(1, "sell", "60000", "0.5", reduce_only=True), OrderCancelled)
    assert not cancelled
    events = mark_ticks(d, liq)
    mine = [c for c in of_type(events, OrderCancelled) if c.account_id == 1]
    assert [c.reason.name for c in mine] == ["BEFORE_LIQUIDATION"]
    adl = of_type(events, Deleveraged)
    assert sum(e.qty_lots for e in adl) == 1000
    assert all(e.price_ticks == bust for e in adl)
    assert d.engine.clearing.accounts[INSURANCE_FUND_ID].positions["BTCUSDT", 0].size_lots == 0
    # The shorts closed at the bankruptcy price: they keep the profit down to it.
    assert d.position(2).size_lots + d.position(4).size_lots == -500


def test_adl_ranks_profit_times_effective_leverage_first() -> None:
    d, liq, _ = isolated("buy")
    d.margin_mode(4, MarginMode.ISOLATED)  # a small margin: high effective leverage
    d.leverage(4, "50")
    d.mark("52000")
    d.limit(4, "sell", "52000", "0.2")  # a short from higher up: more profit when price falls
    d.limit(3, "buy", "52000", "0.2")
    d.mark("50000")
    events = mark_ticks(d, liq)
    first = of_type(events, Deleveraged)[0]
    assert first.account_id == 4


def test_nobody_is_left_below_zero_equity() -> None:
    d, liq, _ = isolated("buy")
    mark_ticks(d, liq - 5_000)  # gap far through the liquidation price
    for account in (1, 2, 3, 4):
        figures = d.figures(account)
        assert figures.wallet_atoms + figures.upnl_atoms >= 0


# -- cross margin -------------------------------------------------------------------------------


def cross_long(wallet: str) -> Driver:
    """Account 1 in cross margin, long 1 BTC at 50,000 with `wallet` USDT."""
    d = Driver(funded={1: wallet, 2: "1000000", 3: "1000000"})
    d.mark("50000")
    d.limit(2, "sell", "50000", "1")
    d.limit(1, "buy", "50000", "1")
    return d


def test_cross_account_is_liquidated_when_its_mm_rate_reaches_100_percent() -> None:
    d = cross_long("5100")
    d.limit(3, "buy", "44000", "1")
    assert not of_type(d.mark("46000"), Liquidated)  # equity ~1,072, MM ~256: under 100%
    mm, denominator = d.figures(1).mm_rate()
    assert mm < denominator
    events = d.mark("45200")  # equity ~272, MM ~250: still under
    assert not of_type(events, Liquidated)
    events = d.mark("45150")  # equity ~222 < MM ~250: breached
    [liquidated] = of_type(events, Liquidated)
    assert liquidated.account_id == 1
    assert d.position(1).size_lots == 0
    assert d.wallet(1) >= 0


def test_cross_hedged_pairs_are_closed_at_the_mark_before_anything_is_taken_over() -> None:
    from perpx.core.enums import PositionMode
    d = Driver(funded={1: "8000", 2: "1000000", 3: "1000000"})
    d.position_mode(1, PositionMode.HEDGE)
    d.mark("50000")
    d.limit(2, "sell", "50000", "1")
    d.limit(1, "buy", "50000", "1", position_idx=1)
    d.limit(3, "buy", "50000", "0.5")
    d.limit(1, "sell", "50000", "0.5", position_idx=2)
    assert (d.position(1, 1).size_lots, d.position(1, 2).size_lots) == (1000, -500)
    d.limit(3, "buy", "30000", "1")  # depth for the liquidation engine
    events = d.mark("34000")  # equity about 7,959 - 8,000 < 0: far past maintenance
    kinds = [type(e).__name__ for e in events]
    # The 0.5 hedged pair closes at the mark first; the unhedged 0.5 long is then taken over.
    assert d.position(1, 2).size_lots == 0
    [liquidated] = of_type(events, Liquidated)
    assert (liquidated.position_idx, liquidated.qty_lots) == (1, 500)
    [closed] = of_type(events, HedgedPairClosed)
    assert (closed.qty_lots, closed.mark_price_ticks) == (500, 340_000)
    assert kinds.index("Liquidated") > kinds.index("HedgedPairClosed")
    assert d.position(1, 1).size_lots == 0
    assert d.figures(1).wallet_atoms + d.figures(1).upnl_atoms >= 0


def test_adl_rank_indicator_shows_five_bands_per_side() -> None:
    from perpx.core.risk.takeover import adl_rank_indicator
    d = Driver(funded={a: "1000000" for a in range(1, 12)})
    d.mark("50000")
    for account in range(1, 6):  # five shorts, more profitable the higher they sold
        price = str(50000 + 100 * account)
        d.mark(price)
        d.limit(account, "sell", price, "0.1")
        d.limit(10, "buy", price, "0.1")
    d.mark("50000")
    bands = adl_rank_indicator(d.engine.clearing, "BTCUSDT")
    assert [bands[a, 0] for a in range(1, 6)] == [1, 2, 3, 4, 5]
    assert bands[10, 0] == 5  # alone on its side: the top of its own queue
    assert (11, 0) not in bands  # no position: Bybit shows 0


def test_a_deleveraged_trader_loses_its_orders_on_the_symbol_first() -> None:
    d, liq, _ = isolated("buy")
    d.limit(2, "sell", "50400", "0.1")  # account 2 (the short) also has an order resting
    events = mark_ticks(d, liq)
    cancelled = [c for c in of_type(events, OrderCancelled) if c.account_id == 2]
    assert [c.reason.name for c in cancelled] == ["BEFORE_ADL"]
    assert of_type(events, Deleveraged)[0].account_id == 2


def test_a_fully_hedged_cross_position_is_never_deleveraged() -> None:
    from perpx.core.enums import PositionMode
    d, liq, _ = isolated("buy")
    d.position_mode(4, PositionMode.HEDGE)
    d.limit(3, "buy", "50000", "0.5")
    d.limit(4, "sell", "50000", "0.5", position_idx=2)
    d.limit(3, "sell", "50000", "0.5")
    d.limit(4, "buy", "50000", "0.5", position_idx=1)
    events = mark_ticks(d, liq)
    assert {e.account_id for e in of_type(events, Deleveraged)} == {2}
    assert d.position(4, 2).size_lots == -500


def test_a_position_above_tier_1_is_first_cut_to_the_tier_below() -> None:
    # 45 BTC at 50,000 (2.25M USDT, tier 2) at 50x: when the mark reaches its liquidation
    # price, a reduce-only IOC cuts the value down to tier 1's 2,000,000 (spec §7.1); the
    # smaller position in tier 1 is no longer breached and stays with its owner.
    d = Driver(funded={1: "60000", 2: "100000000", 3: "100000000"})
    d.margin_mode(1, MarginMode.ISOLATED)
    d.leverage(1, "50")
    d.mark("50000")
    d.limit(2, "sell", "50000", "45")
    d.limit(1, "buy", "50000", "45")
    liq = liquidation.liquidation_price_ticks(d.engine.clearing, d.position(1))
    assert liq is not None
    d.limit(3, "buy", format_ticks(d.spec(), liq), "10")  # a bid at the liquidation price
    events = mark_ticks(d, liq)
    assert not of_type(events, Liquidated)
    left = d.position(1)
    assert 0 < left.size_lots < 45_000
    assert d.spec().notional_atoms(liq, left.qty_lots) <= to_atoms("2000000")
    assert not takeover.is_liquidatable(d.engine.clearing, left, liq)


def test_a_cross_position_above_tier_1_is_cut_to_the_tier_below_before_any_takeover() -> None:
    # 45 BTC long at 50,000 and 50x in cross with 60,000 USDT: the MM rate reaches 100% near
    # 48,968 while the position (about 2.2M USDT) is in tier 2. Cutting it to tier 1's
    # 2,000,000 lowers its maintenance margin enough that the account is no longer breached.
    d = Driver(funded={1: "60000", 2: "100000000", 3: "100000000"})
    d.leverage(1, "50")
    d.mark("50000")
    d.limit(2, "sell", "50000", "45")
    d.limit(1, "buy", "50000", "45")
    d.limit(3, "buy", "48900", "10")
    for mark in range(491_000, 488_000, -100):
        events = mark_ticks(d, mark)
        if [e for e in of_type(events, Trade) if e.taker_account_id == 1] or of_type(
                events, Liquidated):
            break
    assert not of_type(events, Liquidated)
    left = d.position(1)
    assert 0 < left.size_lots < 45_000
    assert d.spec().notional_atoms(mark, left.qty_lots) <= to_atoms("2000000")
    clearing = d.engine.clearing
    assert not takeover.cross_is_liquidatable(clearing, clearing.accounts[1], "USDT")


def test_an_isolated_limit_order_beyond_the_liquidation_price_is_refused() -> None:
    # Spec §10: adding to a long with a buy at or under its liquidation price is refused with
    # 110040; a buy above it is fine.
    d, liq, _ = isolated("buy")
    events = d.limit(1, "buy", format_ticks(d.spec(), liq), "0.001")
    assert of_type(events, OrderRejected)[0].reason is RejectCode.WOULD_TRIGGER_LIQUIDATION
    assert of_type(d.limit(1, "buy", format_ticks(d.spec(), liq + 1), "0.001"), OrderAccepted)
