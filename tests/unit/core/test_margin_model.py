"""The margin models on worked examples: one BTCUSDT long of 0.001 @ 50,000 at 10x.

BTCUSDT: taker fee 0.055%, first tier MMR 0.5% with no deduction. The position's value at
50,000 is 50 USDT; its fee to close is 50 × (1 − 1/10) × 0.055% = 0.02475; IM + fee to close
is 5 + 0.02475 = 5.02475 (seed 001). The wallet holds 100 USDT (no fees taken here: the
position is put in place by the fill rule, without a trade).
"""

from __future__ import annotations

import pytest

from perpx.convert import to_atoms, to_ticks
from perpx.core.account.accounts import Account, MarginModel
from perpx.core.account.clearing import Clearing
from perpx.core.account.margin_model import CROSS, ISOLATED, PORTFOLIO, model_for
from perpx.core.account.positions import Position, apply_fill
from perpx.core.codes import RejectCode, Rejected
from perpx.core.enums import MarginMode, Side
from perpx.core.numbers import RATE_ONE
from support.builders import btcusdt

USDT = to_atoms
SPEC = btcusdt()


class Book:
    """A clearing whose marks the test sets, with one account holding one long."""

    def __init__(self, model: MarginModel, wallet: str = "100") -> None:
        self.marks: dict[str, int] = {}
        self.clearing = Clearing({"BTCUSDT": SPEC}, self.marks.get, lambda _a, _s: (),
                                 self.marks.get, self.marks.get, lambda _id: None)
        self.account = self.clearing.accounts[1] = Account(1, model)
        self.account.credit("USDT", USDT(wallet))
        self.position = self.account.positions["BTCUSDT", 0] = Position(
            1, "BTCUSDT", 0, 10 * RATE_ONE)
        price, qty = to_ticks(SPEC, "50000"), 1
        effect = apply_fill(self.position, SPEC, Side.BUY, price, qty)
        model.margin_on_open(self.position, SPEC, Side.BUY, price, effect.opened_lots)

    def mark(self, price: str) -> int:
        self.marks["BTCUSDT"] = to_ticks(SPEC, price)
        return self.marks["BTCUSDT"]


def test_each_mode_has_one_model_and_the_account_reads_its_mode_from_it() -> None:
    assert model_for(MarginMode.CROSS) is CROSS and model_for(MarginMode.ISOLATED) is ISOLATED
    assert model_for(MarginMode.PORTFOLIO) is PORTFOLIO
    assert Book(ISOLATED).account.margin_mode is MarginMode.ISOLATED
    assert PORTFOLIO.pools and not CROSS.pools and not ISOLATED.pools


def test_cross_risk_value_at_the_entry_and_after_a_fall() -> None:
    book = Book(CROSS)
    assert book.position.margin_atoms == 0  # cross allocates nothing on a fill
    book.mark("50000")
    risk = book.clearing.figures(book.account)
    assert (risk.equity_atoms, risk.total_im_atoms, risk.mm_atoms, risk.available_atoms) == (
        USDT("100"), USDT("5.02475"), USDT("0.27475"), USDT("94.97525"))
    assert risk.mm_rate() == (USDT("0.27475"), USDT("100"))
    book.mark("49000")  # uPnL −1; IM and MM follow the value, 49 USDT
    risk = book.clearing.figures(book.account)
    assert (risk.equity_atoms, risk.total_im_atoms, risk.mm_atoms, risk.available_atoms) == (
        USDT("99"), USDT("4.92475"), USDT("0.26975"), USDT("94.07525"))
    assert CROSS.available_atoms(book.clearing, book.account, "USDT") == risk.available_atoms


def test_isolated_risk_value_holds_the_allocated_margin_whatever_the_mark() -> None:
    book = Book(ISOLATED)
    assert book.position.margin_atoms == USDT("5.02475")
    book.mark("49000")
    risk = book.clearing.figures(book.account)
    # Equity and MM follow the mark; IM is the allocated margin; available needs no mark.
    assert (risk.equity_atoms, risk.total_im_atoms, risk.mm_atoms, risk.available_atoms) == (
        USDT("99"), USDT("5.02475"), USDT("0.26975"), USDT("94.97525"))
    assert ISOLATED.available_atoms(book.clearing, book.account, "USDT") == risk.available_atoms


def test_isolated_can_open_what_the_available_balance_covers_and_no_more() -> None:
    book = Book(ISOLATED)
    book.mark("50000")
    price = to_ticks(SPEC, "51000")
    assert ISOLATED.can_open(book.clearing, book.account, SPEC, Side.BUY, price, 1,
                             USDT("94.97525"))
    assert not ISOLATED.can_open(book.clearing, book.account, SPEC, Side.BUY, price, 1,
                                 USDT("94.97525") + 1)


def test_cross_can_open_counts_the_orders_own_order_loss() -> None:
    # A buy of 0.001 at 51,000 against the mark 50,000 loses 1 USDT the moment it fills
    # (its order loss): cross mode adds it to the cost, so 1 USDT less of margin fits.
    book = Book(CROSS)
    book.mark("50000")
    above, at = to_ticks(SPEC, "51000"), to_ticks(SPEC, "50000")
    available = USDT("94.97525")
    assert CROSS.can_open(book.clearing, book.account, SPEC, Side.BUY, at, 1, available)
    assert not CROSS.can_open(book.clearing, book.account, SPEC, Side.BUY, at, 1,
                              available + 1)
    assert CROSS.can_open(book.clearing, book.account, SPEC, Side.BUY, above, 1,
                          available - USDT("1"))
    assert not CROSS.can_open(book.clearing, book.account, SPEC, Side.BUY, above, 1,
                              available - USDT("1") + 1)


def test_cross_is_liquidatable_once_equity_meets_maintenance() -> None:
    # Wallet 6: equity = value − 44, MM = value × 0.5% + 0.02475; they meet at a value of
    # 44.24597…, so 44,246.0 is still safe and 44,245.9 is not.
    book = Book(CROSS, wallet="6")
    mark = book.mark("44246")
    risk = book.clearing.figures(book.account)
    assert (risk.equity_atoms, risk.mm_atoms) == (USDT("0.246"), USDT("0.24598"))
    assert not CROSS.is_liquidatable(book.clearing, book.account, book.position, mark)
    mark = book.mark("44245.9")
    risk = book.clearing.figures(book.account)
    assert (risk.equity_atoms, risk.mm_atoms) == (USDT("0.2459"), USDT("0.2459795"))
    assert CROSS.is_liquidatable(book.clearing, book.account, book.position, mark)
    assert CROSS.trigger_ticks(book.clearing, book.position) is None


def test_isolated_is_liquidatable_from_its_trigger_on() -> None:
    book = Book(ISOLATED)
    trigger = ISOLATED.trigger_ticks(book.clearing, book.position)
    assert trigger is not None
    assert ISOLATED.is_liquidatable(book.clearing, book.account, book.position, trigger)
    assert not ISOLATED.is_liquidatable(book.clearing, book.account, book.position, trigger + 1)
    liq, bust = ISOLATED.position_prices(book.clearing, book.account, book.position)
    # #13 B2: bankruptcy where the loss equals the IM, 50,000 × (1 − 1/10).
    assert bust == to_ticks(SPEC, "45000")
    assert liq is not None and bust < liq <= trigger < to_ticks(SPEC, "50000")


def test_isolated_funding_takes_the_shortfall_from_the_position_margin() -> None:
    book = Book(ISOLATED, wallet="5.52475")  # available 0.5 beside the 5.02475 margin
    ISOLATED.cover_funding(book.clearing, book.account, book.position, USDT("1"), "USDT")
    assert (book.position.margin_atoms, book.position.extra_margin_atoms) == (
        USDT("4.52475"), -USDT("0.5"))
    cross = Book(CROSS, wallet="0.5")
    CROSS.cover_funding(cross.clearing, cross.account, cross.position, USDT("1"), "USDT")
    assert (cross.position.margin_atoms, cross.position.extra_margin_atoms) == (0, 0)


def test_isolated_leverage_resets_the_margin_and_cross_leaves_it() -> None:
    book = Book(ISOLATED)
    book.position.extra_margin_atoms = USDT("2")
    book.position.margin_atoms += USDT("2")
    book.position.leverage = 20 * RATE_ONE
    ISOLATED.apply_leverage(book.clearing, SPEC, book.position, raised=True)
    # 50/20 + 50 × 0.95 × 0.055%; the added margin back to zero (spec §1.5).
    assert (book.position.margin_atoms, book.position.extra_margin_atoms) == (
        USDT("2.526125"), 0)
    cross = Book(CROSS)
    cross.position.leverage = 20 * RATE_ONE
    CROSS.apply_leverage(cross.clearing, SPEC, cross.position, raised=True)
    assert cross.position.margin_atoms == 0


def test_isolated_leverage_raise_into_the_trigger_is_refused() -> None:
    book = Book(ISOLATED)
    book.mark("47600")  # safe at 10x (trigger near 45,2xx), breached at 20x (near 47,6xx)
    assert not ISOLATED.is_liquidatable(book.clearing, book.account, book.position,
                                        book.marks["BTCUSDT"])
    book.position.leverage = 20 * RATE_ONE
    with pytest.raises(Rejected) as refused:
        ISOLATED.apply_leverage(book.clearing, SPEC, book.position, raised=True)
    assert refused.value.code is RejectCode.WOULD_TRIGGER_LIQUIDATION


def test_adl_margin_and_hedging_per_mode() -> None:
    isolated, cross = Book(ISOLATED), Book(CROSS)
    cross.mark("49000")
    assert ISOLATED.adl_margin_atoms(isolated.clearing, isolated.account, isolated.position,
                                     "USDT") == USDT("5.02475")
    assert CROSS.adl_margin_atoms(cross.clearing, cross.account, cross.position,
                                  "USDT") == USDT("99")
    assert not ISOLATED.fully_hedged(isolated.account, isolated.position)
    assert not CROSS.fully_hedged(cross.account, cross.position)  # one-way: nothing opposite


def test_fee_to_close_follows_the_side_when_a_position_turns_at_the_same_entry_value() -> None:
    """A long closed and reopened short at the same price and size keeps its entry value.

    The fee to close is taken on the value at bankruptcy, V(1 − 1/L) long and V(1 + 1/L)
    short: 50 × 0.9 × 0.055% = 0.02475 and 50 × 1.1 × 0.055% = 0.03025. The position's
    memo of it must not hand the long's figure to the short.
    """
    held = Position(1, "BTCUSDT", 0, 10 * RATE_ONE)
    held.entry_value_atoms = USDT("50")
    held.size_lots = 1
    assert held.fee_to_close_atoms(SPEC) == USDT("0.02475")
    held.size_lots = -1
    assert held.fee_to_close_atoms(SPEC) == USDT("0.03025")
    held.size_lots = 1
    assert held.fee_to_close_atoms(SPEC) == USDT("0.02475")
