"""A linear contract's order loss summed at once equals the sum of its orders' terms (issue #14).

Also a term's change as an order's leaves move (`order_loss_change`), against the plain
difference of two terms.

`listed_loss_atoms` re-sums an account's losing orders at every moved mark; on a linear
contract it takes ``-a · Σ gap · q`` (`linear_listed_loss_atoms`) instead of calling
`order_loss_term` per order. On random lists of buys and sells (any prices around the mark,
duplicates, leaves of zero or past a machine word, any atoms per tick and lot), both the
dispatching `listed_loss_atoms` and the special case equal the plain sum of the terms over
the orders `listed_orders` lists.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from perpx.core.account.order_loss import (
    linear_listed_loss_atoms,
    listed_loss_atoms,
    listed_orders,
    order_loss_change,
    order_loss_term,
)
from perpx.core.book.order import RestingOrder
from perpx.core.contract import InverseContract, LinearContract
from perpx.core.enums import OrderType, Side, SmpType, TimeInForce

_ORDER = st.tuples(st.booleans(), st.integers(1, 400),
                   st.one_of(st.integers(0, 500), st.integers(2**62, 2**70)), st.booleans())


def _orders(drawn: list[tuple[bool, int, int, bool]]) -> list[RestingOrder]:
    orders = []
    for order_id, (buy, price, leaves, reduce_only) in enumerate(drawn, start=1):
        order = RestingOrder(order_id, 1, "BTCUSDT", Side.BUY if buy else Side.SELL,
                             OrderType.LIMIT, price, max(leaves, 1), TimeInForce.GTC,
                             reduce_only, False, 0, "", SmpType.NONE, 0)
        order.leaves_lots = leaves
        orders.append(order)
    return orders


@given(st.lists(_ORDER, max_size=30), st.integers(1, 400),
       st.one_of(st.integers(1, 10**6), st.integers(2**40, 2**64)))
def test_the_linear_sum_is_the_terms_sum(drawn: list[tuple[bool, int, int, bool]], mark: int,
                                         atoms_per_tick_lot: int) -> None:
    contract = LinearContract(atoms_per_tick_lot)
    buys, sells = listed_orders(_orders(drawn))
    expected = sum(order_loss_term(contract, mark, o.side, o.price_ticks, o.leaves_lots)
                   for o in buys + sells)
    assert linear_listed_loss_atoms(atoms_per_tick_lot, mark, buys, sells) == expected
    assert listed_loss_atoms(contract, mark, buys, sells) == expected


@given(st.booleans(), st.integers(1, 400), st.integers(1, 400),
       st.one_of(st.integers(0, 500), st.integers(2**62, 2**70)),
       st.one_of(st.integers(0, 500), st.integers(2**62, 2**70)),
       st.one_of(st.integers(1, 10**6), st.integers(2**40, 2**64)))
def test_the_change_of_a_term_is_the_terms_difference(buy: bool, price: int, mark: int,
                                                      before: int, after: int,
                                                      atoms_per_tick_lot: int) -> None:
    # `order_loss_change` on a linear contract (one product) and on the general path (two
    # terms) against the plain difference of `order_loss_term`.
    side = Side.BUY if buy else Side.SELL
    contract = LinearContract(atoms_per_tick_lot)
    expected = (order_loss_term(contract, mark, side, price, after)
                - order_loss_term(contract, mark, side, price, before))
    assert order_loss_change(contract, mark, side, price, before, after) == expected
    inverse = InverseContract(atoms_per_tick_lot)
    assert order_loss_change(inverse, mark, side, price, before, after) == (
        order_loss_term(inverse, mark, side, price, after)
        - order_loss_term(inverse, mark, side, price, before))
