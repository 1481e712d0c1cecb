"""TP/SL rules (spec §10, Bybit trading-stop): which side each leg must be on, and how it fires.

A take profit closes a long when the price rises to it and a short when it falls to it; a
stop loss the other way round. So for a long a TP must lie above its base price and an SL
below it (mirrored for a short), the base being the order's price for TP/SL attached to an
order and the current reference price for TP/SL set on a position. Full mode closes the whole
position at market; Partial mode a quantity, at market or limit. Reduce-only orders cannot
carry TP/SL. A price of 0 removes a leg. Each failure raises `Rejected`.
"""

from __future__ import annotations

from perpx.core.codes import RejectCode, Rejected
from perpx.core.commands import AmendOrder, PlaceOrder
from perpx.core.conditional import Attachment
from perpx.core.enums import (
    OrderType,
    Side,
    StopOrderType,
    TpSlMode,
    TriggerBy,
    TriggerDirection,
)
from perpx.core.instruments import InstrumentSpec

_BUY = Side.BUY
_MARKET = OrderType.MARKET
_LAST = TriggerBy.LAST_PRICE


def leg_direction(take_profit: bool, closing_side: Side) -> TriggerDirection:
    """Return the direction a TP (or SL) leg closing with an order of `closing_side` fires.

    A sell closes a long: its TP fires on a rise, its SL on a fall; a buy closes a short.
    """
    rises = take_profit == (closing_side is not _BUY)
    return TriggerDirection.RISING if rises else TriggerDirection.FALLING


def leg_kind(take_profit: bool, mode: TpSlMode) -> StopOrderType:
    """Return the stopOrderType of a leg."""
    if mode is TpSlMode.FULL:
        return StopOrderType.TAKE_PROFIT if take_profit else StopOrderType.STOP_LOSS
    return StopOrderType.PARTIAL_TAKE_PROFIT if take_profit else StopOrderType.PARTIAL_STOP_LOSS


def check_sides(position_side: Side, base_ticks: int | None, take_profit_ticks: int,
                stop_loss_ticks: int) -> None:
    """Refuse a TP or SL (0: none) on the wrong side of `base_ticks` for a position's side.

    With no base price (no trade or mark yet) there is nothing to compare with.
    """
    if base_ticks is None:
        return
    long = position_side is _BUY
    if take_profit_ticks and (take_profit_ticks <= base_ticks if long
                              else take_profit_ticks >= base_ticks):
        raise Rejected(RejectCode.INVALID_TPSL_PRICE,
                       f"TakeProfit:{take_profit_ticks} set for "
                       f"{'Buy' if long else 'Sell'} position should be "
                       f"{'higher' if long else 'lower'} than base_price:{base_ticks}")
    if stop_loss_ticks and (stop_loss_ticks >= base_ticks if long
                            else stop_loss_ticks <= base_ticks):
        raise Rejected(RejectCode.INVALID_TPSL_PRICE,
                       f"StopLoss:{stop_loss_ticks} set for "
                       f"{'Buy' if long else 'Sell'} position should be "
                       f"{'lower' if long else 'higher'} than base_price:{base_ticks}")


def check_price(spec: InstrumentSpec, price_ticks: int, what: str) -> None:
    """Refuse a negative price or one outside the instrument's price range (0 is allowed)."""
    if price_ticks < 0:
        raise Rejected(RejectCode.INVALID_PARAMETER, f"params error: {what} invalid")
    if price_ticks and not spec.min_price_ticks <= price_ticks <= spec.max_price_ticks:
        raise Rejected(RejectCode.PRICE_OUT_OF_RANGE, "Order price is out of permissible range")


def check_leg_types(spec: InstrumentSpec, mode: TpSlMode, tp_ticks: int, sl_ticks: int,
                    tp_type: OrderType, sl_type: OrderType, tp_limit: int,
                    sl_limit: int) -> None:
    """Refuse a limit leg in Full mode, or a limit leg without a valid limit price."""
    for price, kind, limit, name in ((tp_ticks, tp_type, tp_limit, "tpLimitPrice"),
                                     (sl_ticks, sl_type, sl_limit, "slLimitPrice")):
        if not price or kind is _MARKET:
            continue
        if mode is TpSlMode.FULL:
            raise Rejected(RejectCode.INVALID_PARAMETER,
                           "params error: Full mode TP/SL are market orders")
        if limit <= 0:
            raise Rejected(RejectCode.INVALID_PARAMETER, f"params error: {name} is required")
        check_price(spec, limit, name)


def attachment_for(cmd: PlaceOrder, spec: InstrumentSpec, reduce_only: bool,
                   base_ticks: int | None) -> Attachment | None:
    """Return the TP/SL a new order carries (order id still 0), or None if it carries none."""
    tp = cmd.take_profit_ticks or 0
    sl = cmd.stop_loss_ticks or 0
    if not tp and not sl:
        if (cmd.take_profit_ticks or 0) < 0 or (cmd.stop_loss_ticks or 0) < 0:
            raise Rejected(RejectCode.INVALID_PARAMETER, "params error: TP/SL invalid")
        return None
    if reduce_only or cmd.reduce_only or cmd.close_on_trigger:
        raise Rejected(RejectCode.TPSL_WITH_REDUCE_ONLY,
                       "params error: a reduce-only order cannot carry TP/SL")
    check_price(spec, tp, "takeProfit")
    check_price(spec, sl, "stopLoss")
    tp_limit = cmd.tp_limit_price_ticks or 0
    sl_limit = cmd.sl_limit_price_ticks or 0
    check_leg_types(spec, cmd.tpsl_mode, tp, sl, cmd.tp_order_type, cmd.sl_order_type,
                    tp_limit, sl_limit)
    check_sides(cmd.side, base_ticks, tp, sl)
    return Attachment(0, cmd.account_id, cmd.symbol, cmd.side, cmd.position_idx,
                      cmd.tpsl_mode, tp, sl, cmd.tp_trigger_by, cmd.sl_trigger_by,
                      cmd.tp_order_type, cmd.sl_order_type,
                      tp_limit if cmd.tp_order_type is not _MARKET else 0,
                      sl_limit if cmd.sl_order_type is not _MARKET else 0)


def changes_tpsl(cmd: AmendOrder) -> bool:
    """Tell whether an amend touches the order's attached TP/SL."""
    return any(value is not None for value in (
        cmd.take_profit_ticks, cmd.stop_loss_ticks, cmd.tp_trigger_by, cmd.sl_trigger_by,
        cmd.tp_limit_price_ticks, cmd.sl_limit_price_ticks))


def amended_attachment(cmd: AmendOrder, existing: Attachment | None, order_id: int,
                       side: Side, position_idx: int, reduce_only: bool,
                       spec: InstrumentSpec, base_ticks: int | None) -> Attachment | None:
    """Return the attached TP/SL after an amend (None when both legs end up removed).

    A field left None keeps its value; a price of 0 removes that leg. An order without TP/SL
    gains Full-mode market legs.
    """
    if reduce_only:
        raise Rejected(RejectCode.TPSL_WITH_REDUCE_ONLY,
                       "params error: a reduce-only order cannot carry TP/SL")
    old = existing if existing is not None else Attachment(
        order_id, cmd.account_id, cmd.symbol, side, position_idx, TpSlMode.FULL, 0, 0,
        cmd.tp_trigger_by or _LAST, cmd.sl_trigger_by or _LAST, _MARKET, _MARKET, 0, 0)
    tp = old.take_profit_ticks if cmd.take_profit_ticks is None else cmd.take_profit_ticks
    sl = old.stop_loss_ticks if cmd.stop_loss_ticks is None else cmd.stop_loss_ticks
    tp_limit = (old.tp_limit_price_ticks if cmd.tp_limit_price_ticks is None
                else cmd.tp_limit_price_ticks)
    sl_limit = (old.sl_limit_price_ticks if cmd.sl_limit_price_ticks is None
                else cmd.sl_limit_price_ticks)
    check_price(spec, tp, "takeProfit")
    check_price(spec, sl, "stopLoss")
    check_leg_types(spec, old.mode, tp, sl, old.tp_order_type, old.sl_order_type, tp_limit,
                    sl_limit)
    check_sides(side, base_ticks, tp, sl)
    if not tp and not sl:
        return None
    new = Attachment(order_id, old.account_id, old.symbol, old.side, old.position_idx,
                     old.mode, tp, sl, cmd.tp_trigger_by or old.tp_trigger_by,
                     cmd.sl_trigger_by or old.sl_trigger_by, old.tp_order_type,
                     old.sl_order_type, tp_limit, sl_limit)
    new.tp_order_id = old.tp_order_id
    new.sl_order_id = old.sl_order_id
    return new


def same_attachment(a: Attachment | None, b: Attachment | None) -> bool:
    """Tell whether two attachments carry the same TP/SL."""
    if a is None or b is None:
        return a is b
    return a.to_record() == b.to_record()
