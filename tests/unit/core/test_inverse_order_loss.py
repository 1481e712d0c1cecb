"""Regression: an inverse order at or past the mark has no order loss (found by
tests/property/test_all_contracts.py).

`InverseMaths.order_loss_atoms` rounds the order's value and the mark's value apart, so an
order at the mark whose value ``C/P`` is not a whole atom showed a loss of one atom, while the
clearing's sums (and `can_open`) count only buys above the mark and sells below it. The
contract's formula now answers 0 there too, so `calc.order_loss_atoms` summed order by order
equals the clearing's figure.
"""

from __future__ import annotations

from perpx.core import calc
from perpx.core.enums import Side
from support.builders import btcusd

SPEC = btcusd()
MARK = 650_003  # 65,000.3 USD: 1 USD is not a whole number of BTC atoms


def test_an_inverse_order_at_the_mark_has_no_loss() -> None:
    for side in (Side.BUY, Side.SELL):
        assert calc.order_loss_atoms(side, MARK, MARK, 1, SPEC) == 0


def test_an_inverse_order_better_than_the_mark_has_no_loss() -> None:
    # One tick better than the mark: the two values lie within an atom of each other.
    assert calc.order_loss_atoms(Side.BUY, MARK, MARK - 1, 1, SPEC) == 0
    assert calc.order_loss_atoms(Side.SELL, MARK, MARK + 1, 1, SPEC) == 0


def test_an_inverse_order_worse_than_the_mark_keeps_its_loss() -> None:
    # A buy 1% above the mark loses about 1% of its value: C/MP - C/P, rounded to the larger.
    contract = SPEC.contract
    price = MARK + 6_500
    qty = 65_000
    expected = contract.value_floor_atoms(price, qty) - contract.value_ceil_atoms(MARK, qty)
    assert expected < 0
    assert calc.order_loss_atoms(Side.BUY, MARK, price, qty, SPEC) == expected
    price = MARK - 6_500
    expected = contract.value_floor_atoms(MARK, qty) - contract.value_ceil_atoms(price, qty)
    assert calc.order_loss_atoms(Side.SELL, MARK, price, qty, SPEC) == expected
