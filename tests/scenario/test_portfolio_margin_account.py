"""Portfolio margin through `perpx.Exchange` (next-mechanics §5; worked examples P3, P4, P5).

An account in PORTFOLIO_MARGIN is margined by risk unit: each underlying's worst loss over the
±10% price grid plus its contingency (riskFactor 0.006, not Bybit's), IM 1.2 × MM. Unhedged,
that asks more than cross margin (P3); a perpetual hedged by a dated future on the same
underlying asks almost nothing (P4), where cross margin charges both legs in full.
"""

from __future__ import annotations

from decimal import Decimal

from perpx import Exchange
from perpx.core.account.accounts import Account
from perpx.core.account.margin_model import CROSS, PORTFOLIO
from perpx.core.codes import RejectCode
from perpx.core.events import Liquidated

USD = Decimal("0.00000001")
PERP, FUTURE = "BTCUSDT", "BTCUSDT-25DEC26"


def usd(atoms: int) -> Decimal:
    return Decimal(atoms) * USD


def venue(equity: str, *symbols: str) -> Exchange:
    """Account 1 with `equity` USDT in portfolio margin; account 2 a deep maker."""
    ex = Exchange(list(symbols or (PERP,)), check_invariants=True)
    ex.deposit(1, equity)
    ex.deposit(2, "10000000")
    ex.deposit(3, "10000000")
    for symbol in symbols or (PERP,):
        ex.index_price(symbol, "60000")
        ex.mark_price(symbol, "60000")
    assert ex.set_margin_mode(1, "PORTFOLIO_MARGIN").ret_code == 0
    return ex


def maker(ex: Exchange, symbol: str, price: str = "60000", qty: str = "5") -> None:
    """Account 2 offers at `price`; account 3 bids one dollar under it."""
    assert ex.place_order(2, symbol, "Sell", "Limit", qty=qty, price=price).ret_code == 0
    bid = str(Decimal(price) - 1)
    assert ex.place_order(3, symbol, "Buy", "Limit", qty=qty, price=bid).ret_code == 0


def account(ex: Exchange, account_id: int = 1) -> Account:
    found = ex.engine.clearing.account(account_id)
    assert found is not None
    return found


def test_p3_an_unhedged_perpetual_needs_more_than_cross() -> None:
    ex = venue("10000")
    maker(ex, PERP)
    assert ex.place_order(1, PERP, "Buy", "Market", qty="1").ret_code == 0
    risk = ex.engine.clearing.account_risk(account(ex))
    # P3: MaxLoss 6,000 at -10%, contingency 0.006 × 60,000 = 360; MM 6,360; IM 1.2 × MM.
    assert usd(risk.mm_atoms) == Decimal(6360)
    assert usd(risk.total_im_atoms) == Decimal(7632)
    # The same position under cross at 10x: IM 6,000 + fee to close, MM 300 + fee to close.
    held = account(ex)
    held.model = CROSS
    cross = ex.engine.clearing.account_risk(held)
    assert usd(cross.total_im_atoms) < usd(risk.total_im_atoms)
    assert usd(cross.mm_atoms) < usd(risk.mm_atoms)


def test_p4_a_perpetual_hedged_by_a_future_needs_little() -> None:
    ex = venue("8000", PERP, FUTURE)
    maker(ex, PERP)
    maker(ex, FUTURE)
    assert ex.place_order(1, PERP, "Buy", "Market", qty="1").ret_code == 0
    assert ex.place_order(1, FUTURE, "Sell", "Market", qty="1").ret_code == 0
    risk = ex.engine.clearing.account_risk(account(ex))
    # P4, index base: every scenario nets 0; MM = 0.006 × 60,000 × 2 = 720; IM 864.
    assert usd(risk.mm_atoms) == Decimal(720)
    assert usd(risk.total_im_atoms) == Decimal(864)
    held = account(ex)
    held.model = CROSS
    cross = ex.engine.clearing.account_risk(held)
    held.model = PORTFOLIO
    assert usd(cross.total_im_atoms) > 12 * usd(risk.total_im_atoms)
    # Cross margin could not carry this book on 8,000 USDT: the switch back is refused.
    refused = ex.set_margin_mode(1, "REGULAR_MARGIN")
    assert refused.reject is RejectCode.MARGIN_MODE_SWITCH_REFUSED
    assert "insufficient margin" in refused.detail


def test_p5_an_inverse_position_loses_its_contracts_times_the_move() -> None:
    ex = Exchange(["BTCUSD"], check_invariants=True)
    ex.deposit(1, "1", "BTC")
    ex.deposit(2, "100", "BTC")
    ex.deposit(3, "100", "BTC")
    ex.index_price("BTCUSD", "60000")
    ex.mark_price("BTCUSD", "60000")
    assert ex.set_margin_mode(1, "PORTFOLIO_MARGIN").ret_code == 0
    maker(ex, "BTCUSD", qty="100000")
    assert ex.place_order(1, "BTCUSD", "Buy", "Market", qty="60000").ret_code == 0
    held = account(ex)
    result = held.model.margins(ex.engine.clearing, held)  # type: ignore[attr-defined]
    unit = result.unit("BTC")
    assert unit is not None
    # P5: 60,000 USD contracts, -10% → exactly -6,000 USD, +10% → +6,000 USD.
    assert usd(unit.pnls[0]) == Decimal(-6000)
    assert usd(unit.pnls[-1]) == Decimal(6000)
    assert usd(unit.max_loss) == Decimal(6000)


def test_entering_needs_1000_usd_of_equity() -> None:
    ex = Exchange([PERP])
    ex.deposit(1, "999")
    refused = ex.set_margin_mode(1, "PORTFOLIO_MARGIN")
    assert refused.reject is RejectCode.MARGIN_MODE_SWITCH_REFUSED
    assert refused.detail.startswith("3400000: Equity needs to be equal to or greater than 1000")
    ex.deposit(1, "1")
    assert ex.set_margin_mode(1, "PORTFOLIO_MARGIN").ret_code == 0


def test_isolated_with_a_position_cannot_enter() -> None:
    ex = Exchange([PERP])
    ex.deposit(1, "10000")
    ex.deposit(2, "100000")
    ex.deposit(3, "100000")
    ex.index_price(PERP, "60000")
    ex.mark_price(PERP, "60000")
    assert ex.set_margin_mode(1, "ISOLATED_MARGIN").ret_code == 0
    maker(ex, PERP)
    assert ex.place_order(1, PERP, "Buy", "Market", qty="0.1").ret_code == 0
    refused = ex.set_margin_mode(1, "PORTFOLIO_MARGIN")
    assert refused.reject is RejectCode.MARGIN_MODE_SWITCH_REFUSED


def test_cross_enters_with_its_positions() -> None:
    ex = Exchange([PERP])
    ex.deposit(1, "10000")
    ex.deposit(2, "100000")
    ex.deposit(3, "100000")
    ex.index_price(PERP, "60000")
    ex.mark_price(PERP, "60000")
    maker(ex, PERP)
    assert ex.place_order(1, PERP, "Buy", "Market", qty="0.5").ret_code == 0
    assert ex.set_margin_mode(1, "PORTFOLIO_MARGIN").ret_code == 0
    [position] = ex.positions(1)
    assert position.margin_mode == "portfolio" and position.liq_price == ""
    assert ex.set_margin_mode(1, "REGULAR_MARGIN").ret_code == 0


def test_an_order_whose_trial_mm_exceeds_equity_is_refused() -> None:
    ex = venue("5000")
    maker(ex, PERP)
    refused = ex.place_order(1, PERP, "Buy", "Market", qty="1")
    # MM with the buy filled: 6,360 > 5,000 of equity (Bybit's CancelByPmTrialMmOverEquity).
    assert refused.reject is RejectCode.PM_TRIAL_MM_OVER_EQUITY
    assert ex.positions(1) == []
    # Within equity but above the margin balance after IM (1.2 × 3,180 = 3,816 > 3,500).
    ex2 = venue("3500")
    maker(ex2, PERP)
    short = ex2.place_order(1, PERP, "Buy", "Market", qty="0.5")
    assert short.reject is RejectCode.INSUFFICIENT_AVAILABLE_BALANCE


def test_liquidation_closes_in_the_book_and_leaves_the_rest() -> None:
    ex = venue("7700")
    maker(ex, PERP, qty="2")
    assert ex.place_order(1, PERP, "Buy", "Market", qty="1").ret_code == 0
    # Bids below for the liquidation's close to meet.
    assert ex.place_order(3, PERP, "Buy", "Limit", qty="5", price="58900").ret_code == 0
    before = ex.engine.clearing.account_risk(account(ex))
    assert not before.breached()
    moved = [ex.index_price(PERP, "57000"),
             ex.mark_price(PERP, "57000")]  # MB 7,667 - 3,000 < MM 5,700 + 342
    risk = ex.engine.clearing.account_risk(account(ex))
    assert ex.positions(1) == []  # closed in the book, not taken over
    assert not any(isinstance(e, Liquidated) for r in moved for e in r.events)
    assert usd(risk.total_equity_atoms) > 0
    ex.check_invariants()
