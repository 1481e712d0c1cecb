"""TP/SL and trailing stops (spec §10, Bybit trading-stop): their rules and a position's legs.

A take profit closes a long when the price rises to it and a short when it falls to it; a
stop loss the other way round. So for a long a TP must lie above its base price and an SL
below it (mirrored for a short), the base being the order's price for TP/SL attached to an
order and the current reference price for TP/SL set on a position. Full mode closes the whole
position at market; Partial mode a quantity, at market or limit. Reduce-only orders cannot
carry TP/SL. A price of 0 removes a leg. Each failure raises `Rejected`.

A position's legs are waiting orders (`core/orders/conditional.py`) that close with
reduce-only, close-on-trigger orders: Full TP/SL and the trailing stop one of each per
position (size 0: the whole position when they fire), Partial pairs any number. They are set
by `set_trading_stop` or started by an order's fill (`start_filled`), and go with the
position (`clear_unguarded`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

from perpx.core.account.clearing import Clearing
from perpx.core.codes import RejectCode, Rejected
from perpx.core.commands import AmendOrder, PlaceOrder, SetTradingStop
from perpx.core.enums import (
    CancelReason,
    OrderType,
    PositionMode,
    Side,
    SmpType,
    StopOrderType,
    TimeInForce,
    TpSlMode,
    TriggerBy,
    TriggerDirection,
)
from perpx.core.events import Event, TradingStopSet, TrailingStopMoved
from perpx.core.instruments import InstrumentSpec
from perpx.core.lifecycle import TRANSITIONS, Happening
from perpx.core.orders import closing
from perpx.core.orders.conditional import Attachment, ConditionalOrder, Waiting
from perpx.core.orders.rules import check_position_idx, check_price_range, check_qty

_BUY: Final = Side.BUY
_MARKET: Final = OrderType.MARKET
_LAST: Final = TriggerBy.LAST_PRICE
_RISING: Final = TriggerDirection.RISING
_TRAILING: Final = StopOrderType.TRAILING_STOP
POSITION_LEGS: Final = (StopOrderType.TAKE_PROFIT, StopOrderType.STOP_LOSS, _TRAILING)


class StopsPort(Protocol):
    """What the TP/SL rules ask of the trigger engine (`perpx.core.orders.stops.Stops`).

    Declared here so the rules sit below the trigger engine that calls them.
    """

    waiting: Waiting
    clearing: Clearing
    new_order_id: Callable[[], int]

    def reference(self, symbol: str, trigger_by: TriggerBy) -> int | None:
        """Return the symbol's current last, mark or index price, if there is one."""
        ...

    def accept(self, order: ConditionalOrder, seq: int, ts_ms: int,
               events: list[Event]) -> None:
        """Keep a new waiting order and say so."""
        ...

    def amended(self, order: ConditionalOrder, seq: int, ts_ms: int,
                events: list[Event]) -> None:
        """Say what a waiting order's figures now are."""
        ...

    def deactivate(self, order: ConditionalOrder, reason: CancelReason, seq: int, ts_ms: int,
                   events: list[Event]) -> None:
        """Cancel a waiting order before its trigger."""
        ...

    def drop_attachment(self, order_id: int) -> None:
        """Forget the TP/SL an order carried."""
        ...

    def recheck(self, order: ConditionalOrder) -> None:
        """Look at a new or moved TP/SL against the price now."""
        ...


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
    if price_ticks:
        check_price_range(spec, price_ticks)


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


def refuse_with_reduce_only(cmd: PlaceOrder) -> None:
    """Refuse TP/SL on a reduce-only or close-on-trigger order (spec §10), before all else."""
    if (cmd.take_profit_ticks or cmd.stop_loss_ticks) and (
            cmd.reduce_only or cmd.close_on_trigger):
        raise Rejected(RejectCode.TPSL_WITH_REDUCE_ONLY,
                       "params error: a reduce-only order cannot carry TP/SL")


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


# -- a position's TP/SL and trailing stop ---------------------------------------------------


def set_trading_stop(stops: StopsPort, cmd: SetTradingStop, events: list[Event]) -> None:
    """Set, change or remove a position's TP/SL and trailing stop (Bybit trading-stop).

    Everything is checked before anything changes; a refusal raises `Rejected`.
    """
    clearing = stops.clearing
    account = clearing.user_account(cmd.account_id)
    spec = clearing.spec_of(cmd.symbol)
    check_position_idx(account.position_mode(cmd.symbol) is PositionMode.HEDGE,
                       cmd.position_idx)
    position = account.position(cmd.symbol, cmd.position_idx)
    if position is None or position.side is None:
        raise Rejected(RejectCode.NO_POSITION_FOR_TRADING_STOP,
                       "can not set tp/sl/ts for zero position")
    side = position.side
    closing_side = side.opposite
    tp, sl = cmd.take_profit_ticks, cmd.stop_loss_ticks
    trail = cmd.trailing_stop_ticks
    if tp is None and sl is None and trail is None:
        raise Rejected(RejectCode.INVALID_PARAMETER, "params error: nothing to set")
    check_price(spec, tp or 0, "takeProfit")
    check_price(spec, sl or 0, "stopLoss")
    check_leg_types(spec, cmd.tpsl_mode, tp or 0, sl or 0, cmd.tp_order_type,
                         cmd.sl_order_type, cmd.tp_limit_price_ticks or 0,
                         cmd.sl_limit_price_ticks or 0)
    check_sides(side, stops.reference(cmd.symbol, cmd.tp_trigger_by), tp or 0, 0)
    check_sides(side, stops.reference(cmd.symbol, cmd.sl_trigger_by), 0, sl or 0)
    size = 0
    if cmd.tpsl_mode is TpSlMode.PARTIAL and (tp or sl):
        sizes = {s for s in (cmd.tp_size_lots if tp else None,
                             cmd.sl_size_lots if sl else None) if s is not None}
        if len(sizes) != 1:
            raise Rejected(RejectCode.INVALID_PARAMETER,
                           "params error: tpSize and slSize must be given and equal")
        [size] = sizes
        if not 0 < size <= position.qty_lots:
            raise Rejected(RejectCode.INVALID_PARAMETER, "params error: size invalid")
        check_qty(spec, size, False)
    stop = active = extreme = 0
    if trail is not None:
        if trail < 0:
            raise Rejected(RejectCode.INVALID_PARAMETER,
                           "params error: trailingStop invalid")
        if trail:
            stop, active, extreme = _trailing_start(stops,
                cmd.symbol, side, trail, cmd.active_price_ticks or 0)
    # Checked: commit.
    seq, ts_ms = cmd.seq, cmd.ts_ms
    key = (cmd.account_id, cmd.symbol, cmd.position_idx)
    if cmd.tpsl_mode is TpSlMode.FULL:
        for take_profit, price, trigger_by in ((True, tp, cmd.tp_trigger_by),
                                               (False, sl, cmd.sl_trigger_by)):
            if price is not None:
                _set_full_leg(stops, key, closing_side, take_profit, price, trigger_by, 0,
                                   seq, ts_ms, events)
    elif size:
        _new_pair(stops, key, closing_side, size, tp or 0, sl or 0, cmd.tp_trigger_by,
                       cmd.sl_trigger_by, cmd.tp_order_type, cmd.sl_order_type,
                       cmd.tp_limit_price_ticks or 0, cmd.sl_limit_price_ticks or 0, 0,
                       seq, ts_ms, events)
    if trail is not None:
        _set_trailing(stops, key, closing_side, trail, stop, active, extreme, seq, ts_ms,
                           events)
    publish(stops, *key, seq, ts_ms, events)


def _trailing_start(stops: StopsPort, symbol: str, side: Side, distance: int,
                    active: int) -> tuple[int, int, int]:
    """Check a trailing stop; return (stop, activation price, extreme) to start it with.

    Without an activation price it arms at the last price at once (spec §10 [B-TS]);
    an activation price must lie ahead of the last price, in the position's favour.
    """
    last = stops.reference(symbol, _LAST)
    if last is None:
        raise Rejected(RejectCode.NO_REFERENCE_PRICE, "params error: no last price")
    long = side is Side.BUY
    if active:
        if active <= last if long else active >= last:
            raise Rejected(RejectCode.INVALID_TPSL_PRICE,
                           f"activePrice:{active} should be "
                           f"{'higher' if long else 'lower'} than last price:{last}")
        if long and active - distance <= 0:
            raise Rejected(RejectCode.INVALID_TPSL_PRICE, "trailingStop too large")
        return 0, active, 0
    if long and last - distance <= 0:
        raise Rejected(RejectCode.INVALID_TPSL_PRICE, "trailingStop too large")
    return (last - distance if long else last + distance), 0, last


def _set_full_leg(stops: StopsPort, key: tuple[int, str, int], closing_side: Side,
                  take_profit: bool, price: int, trigger_by: TriggerBy, parent: int, seq: int,
                  ts_ms: int, events: list[Event]) -> None:
    kind = leg_kind(take_profit, TpSlMode.FULL)
    leg = stops.waiting.full_leg(*key, kind)
    if leg is not None and price == 0:
        stops.deactivate(leg, CancelReason.BY_USER, seq, ts_ms, events)
    elif leg is not None:
        leg.status = TRANSITIONS[leg.status, Happening.AMEND]
        leg.trigger_price_ticks = price
        leg.trigger_by = trigger_by
        leg.updated_ts_ms = ts_ms
        stops.waiting.refile(leg)
        stops.amended(leg, seq, ts_ms, events)
        stops.recheck(leg)
    elif price:
        leg = _leg(stops, key, closing_side, take_profit, TpSlMode.FULL, price, trigger_by,
                        0, _MARKET, 0, parent, ts_ms)
        stops.accept(leg, seq, ts_ms, events)
        stops.recheck(leg)


def _leg(stops: StopsPort, key: tuple[int, str, int], closing_side: Side, take_profit: bool,
         mode: TpSlMode, price: int, trigger_by: TriggerBy, qty: int,
         order_type: OrderType, limit_price: int, parent: int,
         ts_ms: int) -> ConditionalOrder:
    account_id, symbol, idx = key
    leg = ConditionalOrder(
        stops.new_order_id(), account_id, symbol, closing_side, order_type,
        limit_price if order_type is not _MARKET else 0, qty,
        TimeInForce.IOC if order_type is _MARKET else TimeInForce.GTC, True, True, idx,
        "", SmpType.NONE, leg_kind(take_profit, mode), price,
        leg_direction(take_profit, closing_side), trigger_by, ts_ms)
    leg.tpsl_mode = mode
    leg.parent_order_id = parent
    return leg


def _new_pair(stops: StopsPort, key: tuple[int, str, int], closing_side: Side, qty: int,
              tp: int, sl: int, tp_by: TriggerBy, sl_by: TriggerBy, tp_type: OrderType,
              sl_type: OrderType, tp_limit: int, sl_limit: int, parent: int, seq: int,
              ts_ms: int, events: list[Event]) -> tuple[int, int]:
    """Start a partial TP/SL pair (either leg may be absent); return the legs' ids."""
    legs = [_leg(stops, key, closing_side, take_profit, TpSlMode.PARTIAL, price, by, qty,
                      kind, limit, parent, ts_ms)
            for take_profit, price, by, kind, limit in ((True, tp, tp_by, tp_type, tp_limit),
                                                        (False, sl, sl_by, sl_type, sl_limit))
            if price]
    if len(legs) == 2:
        legs[0].pair_order_id, legs[1].pair_order_id = legs[1].order_id, legs[0].order_id
    for leg in legs:
        stops.accept(leg, seq, ts_ms, events)
    for leg in legs:
        stops.recheck(leg)
    tp_id = next((leg.order_id for leg in legs
                  if leg.stop_order_type is StopOrderType.PARTIAL_TAKE_PROFIT), 0)
    sl_id = next((leg.order_id for leg in legs
                  if leg.stop_order_type is StopOrderType.PARTIAL_STOP_LOSS), 0)
    return tp_id, sl_id


def _set_trailing(stops: StopsPort, key: tuple[int, str, int], closing_side: Side,
                  distance: int, stop: int, active: int, extreme: int, seq: int, ts_ms: int,
                  events: list[Event]) -> None:
    leg = stops.waiting.full_leg(*key, _TRAILING)
    if leg is not None and not distance:
        stops.deactivate(leg, CancelReason.BY_USER, seq, ts_ms, events)
        return
    if not distance:
        return
    if leg is None:
        account_id, symbol, idx = key
        leg = ConditionalOrder(
            stops.new_order_id(), account_id, symbol, closing_side, _MARKET, 0, 0,
            TimeInForce.IOC, True, True, idx, "", SmpType.NONE, _TRAILING, stop,
            _RISING if closing_side is Side.BUY else TriggerDirection.FALLING, _LAST,
            ts_ms)
        leg.tpsl_mode = TpSlMode.FULL
        fresh = True
    else:
        leg.status = TRANSITIONS[leg.status, Happening.AMEND]
        leg.updated_ts_ms = ts_ms
        fresh = False
    leg.trailing_stop_ticks = distance
    leg.active_price_ticks = active
    leg.extreme_ticks = extreme
    leg.trigger_price_ticks = stop
    if fresh:
        stops.accept(leg, seq, ts_ms, events)
    else:
        stops.waiting.refile(leg)
        stops.amended(leg, seq, ts_ms, events)
    if extreme:
        events.append(TrailingStopMoved(seq, ts_ms, leg.order_id, leg.account_id,
                                        leg.symbol, leg.position_idx, stop, extreme))


def publish(stops: StopsPort, account_id: int, symbol: str, position_idx: int, seq: int,
               ts_ms: int, events: list[Event]) -> None:
    """Say what the position's Full TP/SL and trailing stop now are."""
    waiting = stops.waiting
    tp = waiting.full_leg(account_id, symbol, position_idx, StopOrderType.TAKE_PROFIT)
    sl = waiting.full_leg(account_id, symbol, position_idx, StopOrderType.STOP_LOSS)
    trail = waiting.full_leg(account_id, symbol, position_idx, _TRAILING)
    events.append(TradingStopSet(
        seq, ts_ms, account_id, symbol, position_idx,
        tp.trigger_price_ticks if tp else 0, sl.trigger_price_ticks if sl else 0,
        tp.trigger_by if tp else _LAST, sl.trigger_by if sl else _LAST,
        trail.trailing_stop_ticks if trail else 0, trail.active_price_ticks if trail else 0))


def clear_unguarded(stops: StopsPort, keys: list[tuple[int, str, int]], seq: int, ts_ms: int,
                     events: list[Event]) -> None:
    """Deactivate TP/SL and trailing stops whose position is gone or turned round."""
    clearing = stops.clearing
    for account_id, symbol, idx in keys:
        guards = stops.waiting.guarding(account_id, symbol, idx)
        if not guards:
            continue
        changed = False
        for order in guards:
            if order.order_id in stops.waiting.orders and not closing.closable_lots(
                    clearing, account_id, symbol, idx, order.side):
                stops.deactivate(order, CancelReason.TPSL_CLEARED, seq, ts_ms, events)
                changed = changed or order.stop_order_type in POSITION_LEGS
        if changed:
            publish(stops, account_id, symbol, idx, seq, ts_ms, events)


def start_filled(stops: StopsPort, seq: int, ts_ms: int, events: list[Event]) -> None:
    """Start the TP/SL of orders that filled (spec §10: TP/SL activate on fill)."""
    clearing = stops.clearing
    fills = sorted(clearing.watched_fills.items())
    clearing.watched_fills.clear()
    for order_id, lots in fills:
        attachment = stops.waiting.attachments.get(order_id)
        if attachment is None:
            continue
        side, account_id = attachment.side, attachment.account_id
        symbol, idx = attachment.symbol, attachment.position_idx
        position = clearing.accounts[account_id].position(symbol, idx)
        if position is None or position.side is not side:
            continue  # the fill only closed: no position of the order's side to guard
        key = (account_id, symbol, idx)
        if attachment.mode is TpSlMode.FULL:
            # A new order with Full TP/SL replaces the position's once it fills.
            _set_full_leg(stops, key, side.opposite, True, attachment.take_profit_ticks,
                               attachment.tp_trigger_by, order_id, seq, ts_ms, events)
            _set_full_leg(stops, key, side.opposite, False, attachment.stop_loss_ticks,
                               attachment.sl_trigger_by, order_id, seq, ts_ms, events)
            stops.drop_attachment(order_id)
            publish(stops, *key, seq, ts_ms, events)
            continue
        _grow_pair(stops, attachment, key, side.opposite, lots, order_id, seq, ts_ms, events)


def _grow_pair(stops: StopsPort, attachment: Attachment, key: tuple[int, str, int],
               closing_side: Side, lots: int, parent: int, seq: int, ts_ms: int,
               events: list[Event]) -> None:
    """Size a Partial pair to the parent's fills: grow the live legs, or start a pair."""
    waiting = stops.waiting
    legs = [waiting.orders[i] for i in (attachment.tp_order_id, attachment.sl_order_id)
            if i in waiting.orders]
    if legs:
        for leg in legs:
            leg.qty_lots += lots
            leg.updated_ts_ms = ts_ms
            stops.amended(leg, seq, ts_ms, events)
        return
    attachment.tp_order_id, attachment.sl_order_id = _new_pair(stops,
        key, closing_side, lots, attachment.take_profit_ticks, attachment.stop_loss_ticks,
        attachment.tp_trigger_by, attachment.sl_trigger_by, attachment.tp_order_type,
        attachment.sl_order_type, attachment.tp_limit_price_ticks,
        attachment.sl_limit_price_ticks, parent, seq, ts_ms, events)
