"""Order admission: the checks a new order passes before it meets the book.

Quantity, order link id and the active-order cap; the price (a market order's protection
price from the band, a limit price's range and band); min notional; then position index,
reduce-only and margin by the clearing; and, in isolated mode, a limit order that would add
beyond the position's liquidation price. A triggered conditional order passes the same checks
at the moment it fires. Each failure raises `Rejected` (but the margin's, which
`validate_order` returns to its caller: `MARGIN_REFUSED`); nothing is changed here. The rules
themselves are written once in `rules`; this module says which apply to a new order, and when.
"""

from __future__ import annotations

from typing import Any, Final

from perpx.core.account.accounts import Account
from perpx.core.account.clearing import MARGIN_REFUSED, Clearing, no_balance
from perpx.core.codes import RejectCode, Rejected
from perpx.core.commands import PlaceOrder
from perpx.core.enums import OrderType, Side
from perpx.core.instruments import InstrumentSpec, PriceLimitAction
from perpx.core.market import Market
from perpx.core.orders import closing
from perpx.core.orders.rules import (
    check_min_notional,
    check_order_link_id,
    check_order_price,
    check_qty,
    max_qty_lots,
)
from perpx.core.prices.prices import order_price_band

_BUY: Final = Side.BUY
_MARKET: Final = OrderType.MARKET



def validate_place(market: Market, clearing: Clearing, cmd: PlaceOrder) -> tuple[int, int, bool]:
    """Check an order; return its working price, quantity and reduce-only flag.

    Every refusal raised, the margin's too (`validate_order` returns that one).
    """
    price, qty, reduce_only = validate_order(
        market, clearing, market.instruments.get(cmd.symbol), cmd.account_id, cmd.symbol,
        cmd.side, cmd.order_type, cmd.qty_lots, cmd.price_ticks, cmd.reduce_only,
        cmd.close_on_trigger, cmd.position_idx, cmd.order_link_id)
    if qty == MARGIN_REFUSED:
        raise no_balance()
    return price, qty, reduce_only


def validate_order(market: Market, clearing: Clearing, spec: InstrumentSpec | None,
                   account_id: int, symbol: str, side: Side, order_type: OrderType, qty: int,
                   price_ticks: int | None,
                   reduce_only: bool, close_on_trigger: bool, position_idx: int,
                   order_link_id: str) -> tuple[int, int, bool]:
    """Check an order given by its fields; return its working price, quantity and reduce-only.

    Steps: 1. instrument, quantity (0 with close-on-trigger: the whole position) and link
    id; 2. the price (market: the band's protection price; limit: range and band); 3. min
    notional; 4. position index, reduce-only and margin, by the clearing. Every refusal is
    raised but the margin's, returned as a quantity of `MARGIN_REFUSED` (see there): the
    caller refuses the order with `no_balance`'s code and detail.

    By its fields, not the command: the engine reads a new order's fields in one call, where
    each read of a msgspec Struct's field from compiled code is a generic attribute lookup.
    `spec` is `symbol`'s listed instrument, None if it is not listed: the caller has looked
    it up already (the engine, to take the listed symbol's own str), so it is not looked up
    twice per order (issue #14).
    """
    if spec is None:
        raise Rejected(RejectCode.UNKNOWN_SYMBOL, f"symbol invalid: {symbol}")
    is_market = order_type is _MARKET
    # A close-on-trigger order only ever closes (spec §10): it is reduce-only.
    reduce_only = reduce_only or close_on_trigger
    if qty == 0 and close_on_trigger:
        # Bybit: qty "0" with reduceOnly and closeOnTrigger closes the whole position, up
        # to the largest quantity one order may carry.
        qty = min(max_qty_lots(spec, is_market),
                  closing.closable_lots(clearing, account_id, symbol,
                                        position_idx, side))
        if qty == 0:
            raise Rejected(RejectCode.REDUCE_ONLY_NOT_SATISFIED,
                           "Reduce-only rule not satisfied")
    check_qty(spec, qty, is_market)
    # The id boxed once for its lookups (the link ids', the orders' here and the account's
    # below): compiled, each lookup by an int boxes it anew, a new object past 256.
    account_key: Any = account_id
    check_order_link_id(order_link_id, account_key, market.by_link)
    by_symbol = market.orders_by_account.get(account_key)
    active = by_symbol.get(symbol) if by_symbol is not None else None
    if active is not None and len(active) >= spec.max_active_orders:
        raise Rejected(RejectCode.TOO_MANY_ACTIVE_ORDERS,
                       f"Not allowed to have more than {spec.max_active_orders} active orders")
    if is_market:
        band = market.band_of(spec)
        if band is None:
            book = market.books[symbol]
            best = book.best_ask() if side is _BUY else book.best_bid()
            if best is None:
                raise Rejected(RejectCode.NO_REFERENCE_PRICE,
                               "no market price to protect a market order")
            min_sell, max_buy = order_price_band(spec, best)
            value_price = best
        else:
            min_sell, max_buy = band.min_sell_ticks, band.max_buy_ticks
            value_price = market.reference_price(symbol) or 0
        price = max_buy if side is _BUY else min_sell
    else:
        if price_ticks is None:
            raise Rejected(RejectCode.INVALID_PRICE, "price is required for a limit order")
        price = checked_limit_price(market, spec, side, price_ticks)
        value_price = price
    check_min_notional(spec, value_price, qty, reduce_only)
    # Looked up once here for both checks: compiled, each lookup boxes the id anew.
    account = clearing.accounts.get(account_key)
    qty, reduce_only = clearing.check_order(
        account, spec, side, position_idx, reduce_only, qty, price)
    if qty == MARGIN_REFUSED:
        return price, qty, reduce_only
    if not reduce_only and not is_market:
        _check_beyond_liquidation(clearing, account, spec, position_idx, side, price)
    return price, qty, reduce_only


def _check_beyond_liquidation(clearing: Clearing, account: Account | None, spec: InstrumentSpec,
                              position_idx: int, side: Side, price: int) -> None:
    """Refuse a limit order that adds to an isolated position beyond its liquidation price.

    Spec §10: a limit order must be better than the position's liquidation price; a buy at
    or under a long's (a sell at or over a short's) would fill into a breached position.
    """
    # Only a mode that liquidates a position on its own (isolated) has its trigger; the
    # others' `trigger_ticks` is always None, so they are not asked.
    if account is None or not account.model.holds_position_margin:
        return
    position = account.positions.get(spec.keys.position(position_idx))
    if position is None or position.side is not side:
        return
    liq = account.model.trigger_ticks(clearing, position)
    if liq is not None and (price <= liq if side is _BUY else price >= liq):
        raise Rejected(RejectCode.WOULD_TRIGGER_LIQUIDATION,
                       "The order will trigger a forced liquidation, please re-submit the "
                       "order.")


def checked_limit_price(market: Market, spec: InstrumentSpec, side: Side,
                        price_ticks: int) -> int:
    """Validate a limit price; clamp it into the band or refuse it, as the instrument says."""
    check_order_price(spec, price_ticks)
    band = market.band_of(spec)
    if band is None:
        return price_ticks
    min_sell, max_buy = band.min_sell_ticks, band.max_buy_ticks
    if side is _BUY and price_ticks > max_buy:
        if spec.price_limit_action is PriceLimitAction.REJECT:
            raise Rejected(RejectCode.PRICE_OUT_OF_BAND,
                           f"buy price above the limit {max_buy}")
        return max_buy
    if side is not _BUY and price_ticks < min_sell:
        if spec.price_limit_action is PriceLimitAction.REJECT:
            raise Rejected(RejectCode.PRICE_OUT_OF_BAND,
                           f"sell price below the limit {min_sell}")
        return min_sell
    return price_ticks
