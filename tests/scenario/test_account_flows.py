"""The unified account through the engine: wallets, fees, P&L, modes, leverage, margin checks."""

from __future__ import annotations

import pytest

from perpx.bybit.retcodes import bybit_code
from perpx.convert import to_atoms, to_ticks
from perpx.core import OrderAccepted, OrderRejected, RejectCode
from perpx.core.account.accounts import FEE_ACCOUNT_ID
from perpx.core.enums import MarginMode, PositionMode
from perpx.core.events import (
    CommandRejected,
    Executed,
    LeverageSet,
    MarginAdjusted,
)
from perpx.core.risk import liquidation
from support.builders import Driver, btcusdt, of_type, state_apart_from_seq

USDT = to_atoms


def rejected(events: list, code: RejectCode) -> bool:
    found = of_type(events, CommandRejected) + of_type(events, OrderRejected)
    return len(found) == 1 and found[0].reason is code


# -- wallets ------------------------------------------------------------------------------


def test_deposit_then_withdraw_what_is_free() -> None:
    d = Driver(funded={})
    d.deposit(1, "1000")
    d.withdraw(1, "400")
    assert d.wallet(1) == USDT("600")


@pytest.mark.parametrize(
    ("amount", "code"),
    [("1000.00000001", RejectCode.INSUFFICIENT_WALLET_BALANCE), ("0", RejectCode.INVALID_AMOUNT)],
    ids=["more than the wallet holds", "nothing"])
def test_a_refused_withdrawal_changes_nothing(amount: str, code: RejectCode) -> None:
    d = Driver(funded={1: "1000"})
    before = state_apart_from_seq(d.engine)
    assert rejected(d.withdraw(1, amount), code)
    assert state_apart_from_seq(d.engine) == before


def test_margin_held_by_an_open_order_cannot_be_withdrawn() -> None:
    d = Driver(funded={1: "100"})
    d.limit(1, "buy", "50000", "0.001")  # cost 5.05225 (IM 5 + open fee + close fee)
    assert rejected(d.withdraw(1, "95"), RejectCode.INSUFFICIENT_WALLET_BALANCE)
    d.withdraw(1, "94.94775")
    assert d.figures(1).available_atoms == 0


# -- fees and P&L -------------------------------------------------------------------------


def test_taker_and_maker_fees_go_to_the_fee_account() -> None:
    d = Driver()
    d.limit(1, "sell", "50000", "1")
    events = d.limit(2, "buy", "50000", "1")
    fees = {e.account_id: (e.fee_atoms, e.is_maker) for e in of_type(events, Executed)}
    assert fees == {2: (USDT("27.5"), False), 1: (USDT("10"), True)}  # 0.055% / 0.02%
    assert d.wallet(FEE_ACCOUNT_ID) == USDT("37.5")
    assert d.wallet(2) == USDT("10000000") - USDT("27.5")


def test_seed_002_partial_close_realizes_price_pnl_less_both_fees() -> None:
    # Seed 002: long 1 BTC @ 50,000, close 0.5 @ 55,000, fees 0.06%. Price P&L 2,500, open
    # fee 30, close fee on the 0.5 closed 16.5 (the seed's 33 charges the whole position and
    # its total of 2,400 does not add up: spec §14 Q6).
    d = Driver(btcusdt(taker_fee_rate=60_000, maker_fee_rate=60_000))
    d.limit(3, "sell", "50000", "1")
    d.limit(1, "buy", "50000", "1")
    d.mark("55000")
    d.limit(3, "buy", "55000", "0.5")
    events = d.limit(1, "sell", "55000", "0.5")
    closing = next(e for e in of_type(events, Executed) if e.account_id == 1)
    assert closing.closed_pnl_atoms == USDT("2500") - USDT("16.5")
    position = d.position(1)
    assert position.realized_pnl_atoms == USDT("2500") - USDT("30") - USDT("16.5")
    assert d.wallet(1) == USDT("10000000") + USDT("2453.5")


def test_average_entry_of_two_fills_is_the_value_weighted_price() -> None:
    d = Driver()
    d.limit(3, "sell", "50000", "1")
    d.limit(1, "buy", "50000", "1")
    d.mark("60000")
    d.limit(3, "sell", "60000", "2")
    d.limit(1, "buy", "60000", "2")
    position = d.position(1)
    assert position.entry_value_atoms == USDT("170000")
    assert position.average_entry_ticks(d.spec()) == to_ticks(d.spec(), "56666.7")


def test_one_way_fill_past_zero_closes_then_opens_the_other_way() -> None:
    d = Driver()
    d.limit(3, "sell", "50000", "1")
    d.limit(1, "buy", "50000", "1")
    d.mark("51000")
    d.limit(3, "buy", "51000", "1.5")
    events = d.limit(1, "sell", "51000", "1.5")
    mine = next(e for e in of_type(events, Executed) if e.account_id == 1)
    # #13 B3: the flip's fee is split pro rata: the closed 1 BTC of 1.5 carries two thirds
    # (rounded toward zero) and the new short keeps the rest as its opening fee.
    close_fee = mine.fee_atoms * 1000 // 1500
    assert (mine.closed_qty_lots, mine.closed_pnl_atoms) == (1000, USDT("1000") - close_fee)
    position = d.position(1)
    assert (position.size_lots, position.entry_value_atoms) == (-500, USDT("25500"))
    assert position.open_fee_atoms == mine.fee_atoms - close_fee


# -- position mode ------------------------------------------------------------------------


def test_hedge_mode_holds_both_sides_and_closes_with_the_opposite_side() -> None:
    d = Driver()
    d.position_mode(1, PositionMode.HEDGE)
    assert rejected(d.limit(1, "buy", "50000", "1"), RejectCode.POSITION_IDX_MISMATCH)
    d.limit(3, "sell", "50000", "1")
    d.limit(1, "buy", "50000", "1", position_idx=1)
    d.limit(3, "buy", "50000", "1")
    d.limit(1, "sell", "50000", "1", position_idx=2)
    assert (d.position(1, 1).size_lots, d.position(1, 2).size_lots) == (1000, -1000)
    d.limit(3, "buy", "50000", "3")
    events = d.limit(1, "sell", "50000", "2", position_idx=1)  # closes the long: clipped to 1
    accepted = of_type(events, OrderAccepted)[0]
    assert (accepted.qty_lots, accepted.reduce_only) == (1000, True)
    assert (d.position(1, 1).size_lots, d.position(1, 2).size_lots) == (0, -1000)


def test_position_mode_switch_needs_a_flat_symbol_without_orders() -> None:
    d = Driver()
    d.limit(1, "buy", "40000", "1")
    assert rejected(d.position_mode(1, PositionMode.HEDGE),
                    RejectCode.POSITION_MODE_SWITCH_REFUSED)
    d.cancel_all(1)
    assert not of_type(d.position_mode(1, PositionMode.HEDGE), CommandRejected)


# -- leverage -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("buy", "sell", "code"),
    [("200", None, RejectCode.LEVERAGE_OUT_OF_RANGE),
     ("0.5", None, RejectCode.LEVERAGE_OUT_OF_RANGE),
     ("10.001", None, RejectCode.LEVERAGE_OUT_OF_RANGE),
     ("10", "20", RejectCode.LEVERAGE_OUT_OF_RANGE),
     ("10", None, RejectCode.LEVERAGE_NOT_MODIFIED)],
    ids=["above the max of 100x", "under 1x", "off the 0.01 step",
         "buy and sell differ in one-way mode", "the same as now"])
def test_leverage_refusals(buy: str, sell: str | None, code: RejectCode) -> None:
    d = Driver()
    assert rejected(d.leverage(1, buy, sell), code)


def test_leverage_caps_the_position_value_at_its_tier() -> None:
    # At 100x the largest position is tier 1's 2,000,000 USDT (spec §4.2).
    d = Driver()
    assert of_type(d.leverage(1, "100"), LeverageSet)
    events = d.limit(1, "buy", "50000", "41")
    assert rejected(events, RejectCode.RISK_LIMIT_EXCEEDED)
    assert bybit_code(RejectCode.RISK_LIMIT_EXCEEDED)[0] == 110090
    d.leverage(1, "90")
    assert of_type(d.limit(1, "buy", "50000", "41"), OrderAccepted)


# -- margin mode and pre-trade checks -------------------------------------------------------


def test_margin_mode_switch_is_refused_while_orders_rest() -> None:
    d = Driver()
    d.limit(1, "buy", "40000", "1")
    assert rejected(d.margin_mode(1, MarginMode.ISOLATED), RejectCode.MARGIN_MODE_SWITCH_REFUSED)
    d.cancel_all(1)
    d.margin_mode(1, MarginMode.ISOLATED)
    assert d.engine.clearing.accounts[1].margin_mode is MarginMode.ISOLATED


@pytest.mark.parametrize("mode", [MarginMode.ISOLATED, MarginMode.CROSS], ids=["isolated", "cross"])
def test_an_order_costing_more_than_is_available_is_refused(mode: MarginMode) -> None:
    d = Driver(funded={1: "100", 3: "1000000"})
    if mode is MarginMode.ISOLATED:
        d.margin_mode(1, mode)
    events = d.limit(1, "buy", "50000", "1")  # cost 5,000 + 27.5 + 24.75
    assert rejected(events, RejectCode.INSUFFICIENT_AVAILABLE_BALANCE)
    assert bybit_code(RejectCode.INSUFFICIENT_AVAILABLE_BALANCE)[0] == 110007
    assert of_type(d.limit(1, "buy", "50000", "0.019"), OrderAccepted)  # 96.0 of 100


def test_a_resting_order_holds_exactly_its_order_cost() -> None:
    d = Driver(funded={1: "100"})
    d.limit(1, "buy", "50000", "0.001")
    assert d.figures(1).order_im_atoms == USDT("5.05225")  # 5 + 0.0275 + 0.02475


def test_closing_needs_no_margin_and_reduce_only_needs_a_position() -> None:
    d = Driver(funded={1: "100", 3: "1000000"})
    assert rejected(d.limit(1, "sell", "50000", "0.001", reduce_only=True),
                    RejectCode.REDUCE_ONLY_NOT_SATISFIED)
    d.limit(3, "sell", "50000", "0.019")
    d.limit(1, "buy", "50000", "0.019")  # costs 95.99 of the 100 USDT
    assert rejected(d.limit(1, "sell", "50100", "0.021"),
                    RejectCode.INSUFFICIENT_AVAILABLE_BALANCE)  # 0.002 would open a short
    assert of_type(d.limit(1, "sell", "50100", "0.019"), OrderAccepted)


# -- isolated margin ----------------------------------------------------------------------


def isolated_long(amount: str = "100") -> Driver:
    d = Driver(funded={1: amount, 3: "1000000"})
    d.margin_mode(1, MarginMode.ISOLATED)
    d.limit(3, "sell", "50000", "0.001")
    d.limit(1, "buy", "50000", "0.001")
    return d


def test_isolated_position_holds_im_and_fee_to_close() -> None:
    d = isolated_long()
    assert d.position(1).margin_atoms == USDT("5.02475")  # 50 / 10 + 50 x 0.9 x 0.055%
    assert d.wallet(1) == USDT("100") - USDT("0.0275")
    assert d.figures(1).available_atoms == USDT("94.94775")


def test_isolated_margin_can_be_added_and_reduced_down_to_im_plus_closing_fee() -> None:
    d = isolated_long()
    d.adjust_margin(1, "10")
    assert d.position(1).margin_atoms == USDT("15.02475")
    assert rejected(d.adjust_margin(1, "-10.00000001"), RejectCode.MARGIN_REDUCTION_TOO_LARGE)
    assert rejected(d.adjust_margin(1, "200"), RejectCode.INSUFFICIENT_AVAILABLE_BALANCE)
    d.adjust_margin(1, "-10")
    assert d.position(1).margin_atoms == USDT("5.02475")


def test_adding_margin_lowers_a_longs_liquidation_price() -> None:
    d = isolated_long()
    before = liquidation.liquidation_price_ticks(d.engine.clearing, d.position(1))
    d.adjust_margin(1, "2")
    after = liquidation.liquidation_price_ticks(d.engine.clearing, d.position(1))
    assert after is not None and before is not None and after < before


def test_auto_margin_replenishment_adds_the_positions_im_when_mark_reaches_lp() -> None:
    # Spec §9 / seed 003: 5 BTC long @ 8,000 at 10x, IM 4,000; when the mark reaches the
    # liquidation price, AMR adds the position's IM from the available balance.
    d = Driver(funded={1: "30000", 3: "1000000"})
    d.margin_mode(1, MarginMode.ISOLATED)
    d.mark("8000")
    d.limit(3, "sell", "8000", "5")
    d.limit(1, "buy", "8000", "5")
    d.auto_add_margin(1, True)
    liq = liquidation.liquidation_price_ticks(d.engine.clearing, d.position(1))
    assert liq == to_ticks(d.spec(), "7236.2")  # UTA formula, rounded toward the mark
    assert not of_type(d.mark("7236.3"), MarginAdjusted)
    added = of_type(d.mark("7236.2"), MarginAdjusted)
    assert [(a.change_atoms, a.automatic) for a in added] == [(USDT("4000"), True)]
    assert liquidation.liquidation_price_ticks(d.engine.clearing, d.position(1)) < liq


def test_raising_leverage_on_an_isolated_position_releases_margin() -> None:
    d = isolated_long()
    available = d.figures(1).available_atoms
    d.leverage(1, "20")
    assert d.position(1).margin_atoms == USDT("2.5") + USDT("0.026125")  # 50/20 + 50x0.95x0.055%
    assert d.figures(1).available_atoms == available + USDT("5.02475") - USDT("2.526125")


def test_hedged_cross_positions_use_seed_001s_hedge_formulas() -> None:
    # Spec §2.3 [drv]: long 1 and short 0.6 BTC @ 50,000, mark 50,000, 10x, 0.055%, MMR 0.5%:
    # long IM 2,039.60 (net size in the first term, §14 Q1), long MM 139.60, short IM = MM
    # 36.30.
    d = Driver()
    d.position_mode(1, PositionMode.HEDGE)
    d.mark("50000")
    d.limit(3, "sell", "50000", "1")
    d.limit(1, "buy", "50000", "1", position_idx=1)
    d.limit(3, "buy", "50000", "0.6")
    d.limit(1, "sell", "50000", "0.6", position_idx=2)
    figures = d.figures(1)
    assert figures.position_im_atoms == USDT("2039.6") + USDT("36.3")
    assert figures.mm_atoms == USDT("139.6") + USDT("36.3")


def test_isolated_position_shows_its_liquidation_and_bankruptcy_prices() -> None:
    d = isolated_long()  # 0.001 BTC long @ 50,000 at 10x with 5.02475 margin
    account = d.engine.clearing.accounts[1]
    liq, bust = liquidation.position_prices(d.engine.clearing, account, d.position(1))
    # #13 B2: BP is where the loss equals the IM, the fee to close reserved beside it:
    # 50,000 x (1 - 1/10) = 45,000 (before #13: (50 - 5.02475) / 0.001 -> 44,975.2).
    assert bust == to_ticks(d.spec(), "45000")
    assert liq is not None and bust < liq < to_ticks(d.spec(), "50000")


def test_cross_position_shows_the_account_level_estimate() -> None:
    # Spec §2.2: P = MP - (MB - ΣMM) / (q (1 - MMR)); one long 0.1 BTC @ 50,000, wallet 1,000.
    d = Driver(funded={1: "1000", 3: "1000000"})
    d.mark("50000")
    d.limit(3, "sell", "50000", "0.1")
    d.limit(1, "buy", "50000", "0.1")
    account = d.engine.clearing.accounts[1]
    figures = d.figures(1)
    liq, bust = liquidation.position_prices(d.engine.clearing, account, d.position(1))
    unit = d.spec().atoms_per_tick_lot * 100
    expected = 500_000 - (figures.margin_balance_atoms - figures.mm_atoms) * 10**8 // (
        unit * (10**8 - 500_000))
    assert liq in (expected, expected + 1)  # rounded up, toward the mark
    assert bust is not None and bust < liq


def test_position_summary_reads_upnl_at_the_mark_or_at_the_last_price() -> None:
    # Spec §12: long 0.2 @ 7,000, 10x; at 7,500 uPnL +100 and ROI 100 / (140 + 0.693).
    d = Driver(btcusdt(min_notional_atoms=0))
    d.mark("7000")
    d.limit(3, "sell", "7000", "0.2")
    d.limit(1, "buy", "7000", "0.2")
    d.limit(3, "sell", "7050", "0.001")
    d.limit(2, "buy", "7050", "0.001")  # last traded price 7,050
    d.mark("7500")
    account = d.engine.clearing.accounts[1]
    at_mark = liquidation.position_summary(d.engine.clearing, account, d.position(1))
    at_last = liquidation.position_summary(d.engine.clearing, account, d.position(1),
                                           at_last_price=True)
    assert at_mark.upnl_atoms == USDT("100")
    assert at_last.upnl_atoms == USDT("10")
    assert at_mark.entry_price_ticks == to_ticks(d.spec(), "7000")
    # Cross margin at the mark: 1,500 / 10 + fee to close 0.693 = 150.693
    assert at_mark.margin_atoms == USDT("150.693")
