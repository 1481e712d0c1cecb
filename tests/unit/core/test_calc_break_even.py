"""Bybit's break-even price of a position (#13 C5): one formula for every view."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from perpx.convert import to_atoms, to_lots, to_ticks
from perpx.core.calc import BREAK_EVEN_MIN_FEE_RATE, break_even_price_ticks
from perpx.core.enums import Side
from perpx.core.numbers import RATE_ONE
from support.builders import btcusdt

BTC = btcusdt()


def test_break_even_matches_bybits_published_row() -> None:
    """#13 C5: 0.010 BTC long at 30,000.10 with -0.16500055 realized -> 30,033.10 (spec §6.1).

    (300.001 + 0.16500055) / (0.010 x (1 - 0.00055)) = 30,033.118..., the nearest tick.
    """
    ticks = break_even_price_ticks(BTC, Side.BUY, to_atoms("300.001"), to_lots(BTC, "0.010"),
                                   to_atoms("-0.16500055"))
    assert ticks == to_ticks(BTC, "30033.1")


def test_a_short_breaks_even_below_its_entry() -> None:
    """#13 C5: a short 0.01 at 30,000 that paid 0.165 in fees: (300 - 0.165) / (0.01 x 1.00055)."""
    ticks = break_even_price_ticks(BTC, Side.SELL, to_atoms("300"), to_lots(BTC, "0.010"),
                                   to_atoms("-0.165"))
    assert ticks == to_ticks(BTC, "29967.0")  # 29,967.018...


def test_no_break_even_once_the_realized_profit_covers_the_whole_entry() -> None:
    assert break_even_price_ticks(BTC, Side.BUY, to_atoms("300"), to_lots(BTC, "0.010"),
                                  to_atoms("301")) is None


@given(st.sampled_from([Side.BUY, Side.SELL]), st.integers(10_000, 1_000_000),
       st.integers(1, 10_000), st.integers(-10**10, 0))
def test_closing_at_break_even_nets_within_a_tick_of_zero(side: Side, price: int, qty: int,
                                                          realized: int) -> None:
    """Closing at the (unrounded) price pays the taker fee and leaves zero in total.

    A short whose realized loss exceeds its entry value has no break-even price (it would
    be below zero): none is given.
    """
    entry = BTC.notional_atoms(price, qty)
    ticks = break_even_price_ticks(BTC, side, entry, qty, realized)
    if side is Side.SELL and entry + realized <= 0:
        assert ticks is None
        return
    assert ticks is not None
    rate = Fraction(max(BTC.taker_fee_rate, BREAK_EVEN_MIN_FEE_RATE), RATE_ONE)

    def net(p: Fraction) -> Fraction:
        exit_value = p * qty * BTC.atoms_per_tick_lot
        return side.sign * (exit_value - entry) - exit_value * rate + realized

    assert net(Fraction(ticks) - Fraction(1, 2)) <= 0 <= net(Fraction(ticks) + Fraction(1, 2)) \
        if side is Side.BUY else \
        net(Fraction(ticks) + Fraction(1, 2)) <= 0 <= net(Fraction(ticks) - Fraction(1, 2))
