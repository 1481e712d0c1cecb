"""The order rules, each written once: quantity, link id, price range, min notional, position index.

New orders (`validation`), conditional orders placed, amended and fired (`stops`), TP/SL legs
(`tpsl`), amends of resting orders (`engine`), position settings (`settings`) and the clearing's
order check all call these. Each is a pure check of its arguments: it raises `Rejected` with the
rule's code and changes nothing, so a caller checks everything first and only then applies.
Which rules a site runs, and in which order, stays with the site (the digests pin both).
"""

from __future__ import annotations

from typing import Any, Final

from perpx.core.codes import RejectCode, Rejected
from perpx.core.enums import Side
from perpx.core.instruments import InstrumentSpec
from perpx.core.market import LinkIndex, linked_order_id

# Bybit's order link id: 1 to 36 of [A-Za-z0-9_-]. Checked by a loop over its code points,
# not a regular expression (`fullmatch` cost ~1.5k instructions an order, a character set's
# `issuperset` ~1.9k for a 36-character id, str methods ~1.3k);
# tests/property/test_order_link_id_oracle.py holds the check to the expression.
ORDER_LINK_ID_MAX: Final = 36
HEDGE_INDEXES: Final = (1, 2)  # 1: the buy (long) side, 2: the sell (short) side
ONE_WAY_INDEXES: Final = (0,)
_BUY: Final = Side.BUY


def max_qty_lots(spec: InstrumentSpec, is_market: bool) -> int:
    """Return the largest quantity one order may carry; a market order has its own cap.

    Bybit maxMktOrderQty for market orders, maxOrderQty for limit orders.
    """
    return spec.max_mkt_order_qty_lots if is_market else spec.max_order_qty_lots


def check_qty(spec: InstrumentSpec, qty_lots: int, is_market: bool) -> None:
    """Refuse a quantity that is not positive or lies outside the instrument's bounds."""
    if qty_lots <= 0:
        raise Rejected(RejectCode.INVALID_QTY, "Qty invalid")
    if qty_lots < spec.min_order_qty_lots:
        raise Rejected(RejectCode.QTY_BELOW_MIN,
                       "The number of contracts exceeds minimum limit allowed: too small")
    if qty_lots > max_qty_lots(spec, is_market):
        raise Rejected(RejectCode.QTY_ABOVE_MAX,
                       "The number of contracts exceeds maximum limit allowed: too large")


def _well_formed_link_id(link: str) -> bool:
    """Tell whether a non-empty `link` is 1 to 36 of [A-Za-z0-9_-].

    Character by character: compiled, ``ord(link[at])`` is a native read of the code point
    and the comparisons native, where `isascii`, `isalnum` and two `replace` calls (a new
    string each) were generic method calls (~1.3k instructions an order, issue #14).
    """
    count = len(link)
    if count > ORDER_LINK_ID_MAX:
        return False
    for at in range(count):
        code = ord(link[at])
        if not (97 <= code <= 122 or 65 <= code <= 90 or 48 <= code <= 57  # a-z A-Z 0-9
                or code == 45 or code == 95):  # - _
            return False
    return True


def check_order_link_id(order_link_id: str, account_id: Any,
                        taken: LinkIndex) -> None:
    """Refuse a malformed link id, or one the account already uses on a live order.

    An empty link id means none and passes. `taken` holds the link ids of each account's
    open and waiting orders (`Market.by_link`, a `market.LinkIndex`): typed as the dicts it
    is, so the compiled test is two dict lookups, where a `Container` was a generic `in`
    (issue #14). `account_id` is typed Any: a caller's boxed id is looked up as it is.
    """
    if not order_link_id:
        return
    if not _well_formed_link_id(order_link_id):
        raise Rejected(RejectCode.INVALID_ORDER_LINK_ID, "orderLinkId invalid")
    if linked_order_id(taken, account_id, order_link_id) is not None:
        raise Rejected(RejectCode.DUPLICATE_ORDER_LINK_ID, "OrderLinkedID is duplicate")


def check_price_range(spec: InstrumentSpec, price_ticks: int) -> None:
    """Refuse a price outside the instrument's [min price, max price] (Bybit 110003)."""
    if not spec.min_price_ticks <= price_ticks <= spec.max_price_ticks:
        raise Rejected(RejectCode.PRICE_OUT_OF_RANGE, "Order price is out of permissible range")


def check_order_price(spec: InstrumentSpec, price_ticks: int,
                      invalid_detail: str = "price invalid") -> None:
    """Refuse a price (an order's or a trigger's) that is not positive, or out of range.

    Prices are whole ticks, so a positive price is always on the tick grid. `invalid_detail`
    is what the refusal of a non-positive price says (the trigger price says so by name).
    """
    if price_ticks <= 0:
        raise Rejected(RejectCode.INVALID_PRICE, invalid_detail)
    check_price_range(spec, price_ticks)


def check_min_notional(spec: InstrumentSpec, price_ticks: int, qty_lots: int,
                       reduce_only: bool) -> None:
    """Refuse an order worth less than the instrument's min notional at `price_ticks`.

    A reduce-only order is exempt: it only ever closes, and a position's tail may be small.
    """
    if (not reduce_only
            and spec.contract.value_floor_atoms(price_ticks, qty_lots) < spec.min_notional_atoms):
        raise Rejected(RejectCode.NOTIONAL_BELOW_MIN,
                       "Order notional value below the lower limit")


def position_indexes(hedge: bool) -> tuple[int, ...]:
    """Return the position indexes a position mode uses: 1 and 2 in hedge mode, else 0."""
    return HEDGE_INDEXES if hedge else ONE_WAY_INDEXES


def check_position_idx(hedge: bool, position_idx: int) -> None:
    """Refuse a position index that does not fit the position mode (`position_indexes`)."""
    if position_idx not in (HEDGE_INDEXES if hedge else ONE_WAY_INDEXES):
        raise Rejected(RejectCode.POSITION_IDX_MISMATCH, "position idx not match position mode")


def closes_hedge_side(hedge: bool, position_idx: int, side: Side) -> bool:
    """Tell whether an order closes its hedge-mode position: a sell on 1, a buy on 2.

    Such an order is reduce-only whatever it says (spec §10).
    """
    return hedge and (position_idx == 1) != (side is _BUY)
