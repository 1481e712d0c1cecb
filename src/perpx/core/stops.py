"""The trigger engine: conditional orders, TP/SL and trailing stops from placement to firing.

Placement (spec §10, Bybit order/create): a conditional order names a trigger price, a
direction (1 rising to it, 2 falling to it) and a reference (last, mark or index); the
trigger must lie on the stated side of that price now (110092 / 110093); at most 10 wait per
account and symbol (110009). It reserves no margin. When it fires it is checked as a new order
at that moment (margin included) and sent, or cancelled if the check fails.

TP/SL come from an order's fill (Full: the position's TP/SL; Partial: a pair sized to the
fill) or from `SetTradingStop`; trailing stops only from the latter. They die with their
position (`CancelByTpSlTsClear`); when a partial leg fires, its pair is deactivated.

Firing (`settle`): price points are queued as the last price trades (the first and last
print of each taker's sweep), the mark moves and the index moves. At each safe point (the
end of a command, and before liquidation looks at a new mark) `settle` works through them in
order: 1. start the TP/SL of orders that filled; 2. clear TP/SL of positions gone and fit
reduce-only orders to shrunk positions; 3. take the next trigger the oldest point crosses
(`TriggerIndex.next_crossed`), act on it, and go back to 1, until no point crosses anything.
A fired order's own prints are new points at the back of the queue, so cascades follow in
time order. It ends: each step removes a waiting order, or moves a trailing stop to a new
extreme that the same point cannot cross again, and orders only come from earlier fills.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpx.core import closing, tpsl
from perpx.core.book.order import RestingOrder
from perpx.core.codes import RejectCode, Rejected
from perpx.core.commands import AmendOrder, PlaceOrder, SetTradingStop
from perpx.core.conditional import Attachment, ConditionalOrder, Waiting
from perpx.core.enums import (
    CancelReason,
    OrderFilter,
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
from perpx.core.events import (
    ConditionalOrderAccepted,
    ConditionalOrderAmended,
    Event,
    OrderCancelled,
    OrderDeactivated,
    OrderTriggered,
    TpSlAttached,
    TradingStopSet,
    TrailingStopMoved,
)
from perpx.core.lifecycle import TRANSITIONS, Happening
from perpx.core.triggers import EntryKind
from perpx.core.validation import ORDER_LINK_ID, check_qty, validate_place

if TYPE_CHECKING:
    from perpx.core.engine import Engine

MAX_CONDITIONAL_ORDERS = 10  # per account and symbol (Bybit)
_MARKET = OrderType.MARKET
_RISING = TriggerDirection.RISING
_LAST = TriggerBy.LAST_PRICE
_MARK = TriggerBy.MARK_PRICE
_TRAILING = StopOrderType.TRAILING_STOP
_POSITION_LEGS = (StopOrderType.TAKE_PROFIT, StopOrderType.STOP_LOSS, _TRAILING)


class Stops:
    """Waiting orders of the engine and the rules that place, change and fire them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.waiting = Waiting(engine.by_link)
        self._settling = False
        # Orders carrying TP/SL that left the book; their attachment goes once all fills
        # are seen.
        self._parents_left: list[int] = []

    # -- prices -----------------------------------------------------------------------------

    def reference(self, symbol: str, trigger_by: TriggerBy) -> int | None:
        """Return the symbol's current last, mark or index price, if there is one."""
        engine = self.engine
        if trigger_by is _LAST:
            return engine.last_price.get(symbol)
        if trigger_by is _MARK:
            return engine.mark_price.get(symbol)
        return engine.index_price.get(symbol)

    def price_moved(self, symbol: str, trigger_by: TriggerBy, price_ticks: int) -> None:
        """Queue a price point for the triggers that watch this reference, if any do."""
        waiting = self.waiting
        if waiting.index.watches(symbol, trigger_by):
            waiting.points.append((symbol, trigger_by, price_ticks))

    def busy(self) -> bool:
        """Tell whether `settle` has anything to do."""
        clearing = self.engine.clearing
        return bool(self.waiting.points or clearing.moved_positions or clearing.watched_fills
                    or self._parents_left)

    def parent_left(self, order_id: int) -> None:
        """Note that an order carrying TP/SL left the book (filled, cancelled or re-queued)."""
        if order_id in self.waiting.attachments:
            self._parents_left.append(order_id)

    # -- placing ----------------------------------------------------------------------------

    def place(self, cmd: PlaceOrder, events: list[Event]) -> None:
        """Accept a conditional order as Untriggered, or raise `Rejected`."""
        engine = self.engine
        clearing = engine.clearing
        spec = clearing.spec_of(cmd.symbol)
        account = clearing.user_account(cmd.account_id)
        is_market = cmd.order_type is _MARKET
        reduce_only = cmd.reduce_only or cmd.close_on_trigger
        if cmd.qty_lots != 0 or not cmd.close_on_trigger:
            check_qty(spec, cmd.qty_lots, is_market)
        if cmd.order_link_id:
            if not ORDER_LINK_ID.fullmatch(cmd.order_link_id):
                raise Rejected(RejectCode.INVALID_ORDER_LINK_ID, "orderLinkId invalid")
            if (cmd.account_id, cmd.order_link_id) in engine.by_link:
                raise Rejected(RejectCode.DUPLICATE_ORDER_LINK_ID, "OrderLinkedID is duplicate")
        if self.waiting.stop_count(cmd.account_id, cmd.symbol) >= MAX_CONDITIONAL_ORDERS:
            raise Rejected(RejectCode.TOO_MANY_CONDITIONAL_ORDERS,
                           "The number of stop orders exceeds the maximum allowable limit")
        hedge = account.position_mode(cmd.symbol) is PositionMode.HEDGE
        if (cmd.position_idx in (1, 2)) != hedge or cmd.position_idx not in (0, 1, 2):
            raise Rejected(RejectCode.POSITION_IDX_MISMATCH,
                           "position idx not match position mode")
        if hedge and (cmd.position_idx == 1) != (cmd.side is Side.BUY):
            reduce_only = True  # the closing side of a hedge-mode position
        if cmd.trigger_direction is None:
            raise Rejected(RejectCode.INVALID_PARAMETER,
                           "params error: triggerDirection is required")
        trigger = cmd.trigger_price_ticks or 0
        self._check_trigger(spec.symbol, spec.min_price_ticks, spec.max_price_ticks, trigger,
                            cmd.trigger_direction, cmd.trigger_by)
        price = 0
        if not is_market:
            price = cmd.price_ticks or 0
            if price <= 0:
                raise Rejected(RejectCode.INVALID_PRICE, "price invalid")
            if not spec.min_price_ticks <= price <= spec.max_price_ticks:
                raise Rejected(RejectCode.PRICE_OUT_OF_RANGE,
                               "Order price is out of permissible range")
        if not reduce_only and spec.notional_atoms(price or trigger, cmd.qty_lots) < (
                spec.min_notional_atoms):
            raise Rejected(RejectCode.NOTIONAL_BELOW_MIN,
                           "Order notional value below the lower limit")
        attachment = tpsl.attachment_for(cmd, spec, reduce_only, price or trigger)
        order = ConditionalOrder(
            engine.new_order_id(), cmd.account_id, cmd.symbol, cmd.side, cmd.order_type, price,
            cmd.qty_lots, TimeInForce.IOC if is_market else cmd.time_in_force, reduce_only,
            cmd.close_on_trigger, cmd.position_idx, cmd.order_link_id, cmd.smp_type,
            StopOrderType.STOP, trigger, cmd.trigger_direction, cmd.trigger_by, cmd.ts_ms)
        self._accept(order, cmd.seq, cmd.ts_ms, events)
        if attachment is not None:
            self.attach(attachment, order.order_id, order.account_id, order.symbol, cmd.seq,
                        cmd.ts_ms, events)

    def _check_trigger(self, symbol: str, low: int, high: int, trigger: int,
                       direction: TriggerDirection, trigger_by: TriggerBy) -> None:
        """Refuse a trigger off the price grid's range or on the wrong side of the price now.

        With no such price yet (no trade, mark or index) any side is accepted: the first
        price decides.
        """
        if trigger <= 0:
            raise Rejected(RejectCode.INVALID_PRICE, "params error: triggerPrice invalid")
        if not low <= trigger <= high:
            raise Rejected(RejectCode.PRICE_OUT_OF_RANGE,
                           "Order price is out of permissible range")
        current = self.reference(symbol, trigger_by)
        if current is None:
            return
        name = {_LAST: "LastPrice", _MARK: "MarkPrice"}.get(trigger_by, "IndexPrice")
        if direction is _RISING and trigger <= current:
            raise Rejected(RejectCode.TRIGGER_NOT_ABOVE_PRICE,
                           f"expect Rising, but trigger_price[{trigger}] <= current[{current}]"
                           f"??{name}")
        if direction is not _RISING and trigger >= current:
            raise Rejected(RejectCode.TRIGGER_NOT_BELOW_PRICE,
                           f"expect Falling, but trigger_price[{trigger}] >= current[{current}]"
                           f"??{name}")

    def attach(self, attachment: Attachment, order_id: int, account_id: int, symbol: str,
               seq: int, ts_ms: int, events: list[Event]) -> None:
        """Keep the TP/SL an order carries until it fills."""
        attachment.order_id = order_id
        self.waiting.attachments[order_id] = attachment
        self.engine.clearing.fill_watch.add(order_id)
        events.append(TpSlAttached(
            seq, ts_ms, order_id, account_id, symbol, attachment.mode,
            attachment.take_profit_ticks, attachment.stop_loss_ticks, attachment.tp_trigger_by,
            attachment.sl_trigger_by, attachment.tp_order_type, attachment.sl_order_type,
            attachment.tp_limit_price_ticks, attachment.sl_limit_price_ticks))

    def replace_attachment(self, order: RestingOrder | ConditionalOrder,
                           new: Attachment | None, seq: int, ts_ms: int,
                           events: list[Event]) -> None:
        """Put amended TP/SL on an order; None takes them off (said with prices of 0)."""
        old = self.waiting.attachments.get(order.order_id)
        self._drop_attachment(order.order_id)
        if new is not None:
            self.attach(new, order.order_id, order.account_id, order.symbol, seq, ts_ms, events)
        elif old is not None:
            events.append(TpSlAttached(
                seq, ts_ms, order.order_id, order.account_id, order.symbol, old.mode, 0, 0,
                old.tp_trigger_by, old.sl_trigger_by, old.tp_order_type, old.sl_order_type, 0,
                0))

    def _drop_attachment(self, order_id: int) -> None:
        if self.waiting.attachments.pop(order_id, None) is not None:
            self.engine.clearing.fill_watch.discard(order_id)

    def _accept(self, order: ConditionalOrder, seq: int, ts_ms: int,
                events: list[Event]) -> None:
        self.waiting.add(order)
        events.append(ConditionalOrderAccepted(
            seq, ts_ms, order.order_id, order.account_id, order.symbol, order.side,
            order.order_type, order.price_ticks, order.qty_lots, order.time_in_force,
            order.reduce_only, order.close_on_trigger, order.position_idx, order.order_link_id,
            order.smp_type, order.stop_order_type, order.trigger_price_ticks,
            order.trigger_direction, order.trigger_by, order.tpsl_mode, order.parent_order_id,
            order.pair_order_id, order.trailing_stop_ticks, order.active_price_ticks))

    # -- amending and cancelling ------------------------------------------------------------

    def amend(self, order: ConditionalOrder, cmd: AmendOrder, events: list[Event]) -> None:
        """Change a waiting order's quantity, price, trigger or attached TP/SL, or raise."""
        spec = self.engine.instruments[order.symbol]
        if order.stop_order_type is _TRAILING:
            raise Rejected(RejectCode.INVALID_PARAMETER,
                           "params error: a trailing stop is changed by trading-stop")
        qty = order.qty_lots
        if cmd.qty_lots is not None:
            if not qty:
                raise Rejected(RejectCode.INVALID_PARAMETER,
                               "params error: this order closes the whole position")
            check_qty(spec, cmd.qty_lots, order.order_type is _MARKET)
            qty = cmd.qty_lots
        price = order.price_ticks
        if cmd.price_ticks is not None:
            if order.order_type is _MARKET:
                raise Rejected(RejectCode.INVALID_PARAMETER,
                               "params error: a market order has no price")
            if cmd.price_ticks <= 0:
                raise Rejected(RejectCode.INVALID_PRICE, "price invalid")
            if not spec.min_price_ticks <= cmd.price_ticks <= spec.max_price_ticks:
                raise Rejected(RejectCode.PRICE_OUT_OF_RANGE,
                               "Order price is out of permissible range")
            price = cmd.price_ticks
        trigger_by = cmd.trigger_by if cmd.trigger_by is not None else order.trigger_by
        trigger = (cmd.trigger_price_ticks if cmd.trigger_price_ticks is not None
                   else order.trigger_price_ticks)
        moved = trigger != order.trigger_price_ticks or trigger_by is not order.trigger_by
        if moved:
            self._check_trigger(order.symbol, spec.min_price_ticks, spec.max_price_ticks,
                                trigger, order.trigger_direction, trigger_by)
        old = self.waiting.attachments.get(order.order_id)
        new = old
        if tpsl.changes_tpsl(cmd):
            if order.is_tpsl:
                raise Rejected(RejectCode.INVALID_PARAMETER,
                               "params error: a TP/SL order carries no TP/SL")
            new = tpsl.amended_attachment(cmd, old, order.order_id, order.side,
                                          order.position_idx, order.reduce_only, spec,
                                          price or trigger)
        if (qty == order.qty_lots and price == order.price_ticks and not moved
                and tpsl.same_attachment(old, new)):
            raise Rejected(RejectCode.NOTHING_TO_AMEND, "order not modified")
        if qty and not order.reduce_only and spec.notional_atoms(price or trigger, qty) < (
                spec.min_notional_atoms):
            raise Rejected(RejectCode.NOTIONAL_BELOW_MIN,
                           "Order notional value below the lower limit")
        # Checked: commit.
        order.status = TRANSITIONS[order.status, Happening.AMEND]
        order.qty_lots = qty
        order.price_ticks = price
        order.trigger_price_ticks = trigger
        order.trigger_by = trigger_by
        order.updated_ts_ms = cmd.ts_ms
        pair = self.waiting.orders.get(order.pair_order_id)
        if pair is not None:
            # Spec §10: editing one leg of a partial pair breaks the pairing.
            order.pair_order_id = pair.pair_order_id = 0
            self._amended(pair, cmd.seq, cmd.ts_ms, events)
        self.waiting.refile(order)
        self._amended(order, cmd.seq, cmd.ts_ms, events)
        if not tpsl.same_attachment(old, new):
            self.replace_attachment(order, new, cmd.seq, cmd.ts_ms, events)
        if order.stop_order_type in _POSITION_LEGS:
            self._stops_set(order.account_id, order.symbol, order.position_idx, cmd.seq,
                            cmd.ts_ms, events)

    def _amended(self, order: ConditionalOrder, seq: int, ts_ms: int,
                 events: list[Event]) -> None:
        events.append(ConditionalOrderAmended(
            seq, ts_ms, order.order_id, order.account_id, order.symbol, order.qty_lots,
            order.price_ticks, order.trigger_price_ticks, order.trigger_by,
            order.pair_order_id))

    def deactivate(self, order: ConditionalOrder, reason: CancelReason, seq: int, ts_ms: int,
                   events: list[Event]) -> None:
        """Cancel a waiting order before its trigger (status Deactivated)."""
        self.waiting.remove(order)
        order.status = TRANSITIONS[order.status, Happening.DEACTIVATE]
        order.updated_ts_ms = ts_ms
        events.append(OrderDeactivated(seq, ts_ms, order.order_id, order.account_id,
                                       order.symbol, order.stop_order_type, reason))
        self._drop_attachment(order.order_id)
        pair = self.waiting.orders.get(order.pair_order_id)
        if pair is not None:
            pair.pair_order_id = 0
            self._amended(pair, seq, ts_ms, events)

    def cancel(self, order: ConditionalOrder, seq: int, ts_ms: int,
               events: list[Event]) -> None:
        """Cancel a waiting order at its owner's request."""
        self.deactivate(order, CancelReason.BY_USER, seq, ts_ms, events)
        if order.stop_order_type in _POSITION_LEGS:
            self._stops_set(order.account_id, order.symbol, order.position_idx, seq, ts_ms,
                            events)

    def cancel_all(self, account_id: int, symbol: str, order_filter: OrderFilter, seq: int,
                   ts_ms: int, events: list[Event]) -> None:
        """Cancel the account's waiting orders on `symbol` that `order_filter` selects."""
        if order_filter is OrderFilter.ORDER:
            return
        touched: set[int] = set()
        for order in self.waiting.of(account_id, symbol):
            if order.order_id not in self.waiting.orders:
                continue  # went with its pair
            if order_filter is OrderFilter.ALL or (
                    order.is_tpsl == (order_filter is OrderFilter.TPSL_ORDER)):
                self.deactivate(order, CancelReason.BY_USER, seq, ts_ms, events)
                if order.stop_order_type in _POSITION_LEGS:
                    touched.add(order.position_idx)
        for idx in sorted(touched):
            self._stops_set(account_id, symbol, idx, seq, ts_ms, events)

    # -- positions' TP/SL and trailing stops --------------------------------------------------

    def set_trading_stop(self, cmd: SetTradingStop, events: list[Event]) -> None:
        """Set, change or remove a position's TP/SL and trailing stop (Bybit trading-stop).

        Everything is checked before anything changes; a refusal raises `Rejected`.
        """
        clearing = self.engine.clearing
        account = clearing.user_account(cmd.account_id)
        spec = clearing.spec_of(cmd.symbol)
        hedge = account.position_mode(cmd.symbol) is PositionMode.HEDGE
        if (cmd.position_idx in (1, 2)) != hedge or cmd.position_idx not in (0, 1, 2):
            raise Rejected(RejectCode.POSITION_IDX_MISMATCH,
                           "position idx not match position mode")
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
        tpsl.check_price(spec, tp or 0, "takeProfit")
        tpsl.check_price(spec, sl or 0, "stopLoss")
        tpsl.check_leg_types(spec, cmd.tpsl_mode, tp or 0, sl or 0, cmd.tp_order_type,
                             cmd.sl_order_type, cmd.tp_limit_price_ticks or 0,
                             cmd.sl_limit_price_ticks or 0)
        tpsl.check_sides(side, self.reference(cmd.symbol, cmd.tp_trigger_by), tp or 0, 0)
        tpsl.check_sides(side, self.reference(cmd.symbol, cmd.sl_trigger_by), 0, sl or 0)
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
                stop, active, extreme = self._trailing_start(
                    cmd.symbol, side, trail, cmd.active_price_ticks or 0)
        # Checked: commit.
        seq, ts_ms = cmd.seq, cmd.ts_ms
        key = (cmd.account_id, cmd.symbol, cmd.position_idx)
        if cmd.tpsl_mode is TpSlMode.FULL:
            for take_profit, price, trigger_by in ((True, tp, cmd.tp_trigger_by),
                                                   (False, sl, cmd.sl_trigger_by)):
                if price is not None:
                    self._set_full_leg(key, closing_side, take_profit, price, trigger_by, 0,
                                       seq, ts_ms, events)
        elif size:
            self._new_pair(key, closing_side, size, tp or 0, sl or 0, cmd.tp_trigger_by,
                           cmd.sl_trigger_by, cmd.tp_order_type, cmd.sl_order_type,
                           cmd.tp_limit_price_ticks or 0, cmd.sl_limit_price_ticks or 0, 0,
                           seq, ts_ms, events)
        if trail is not None:
            self._set_trailing(key, closing_side, trail, stop, active, extreme, seq, ts_ms,
                               events)
        self._stops_set(*key, seq, ts_ms, events)

    def _trailing_start(self, symbol: str, side: Side, distance: int,
                        active: int) -> tuple[int, int, int]:
        """Check a trailing stop; return (stop, activation price, extreme) to start it with.

        Without an activation price it arms at the last price at once (spec §10 [B-TS]);
        an activation price must lie ahead of the last price, in the position's favour.
        """
        last = self.reference(symbol, _LAST)
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

    def _set_full_leg(self, key: tuple[int, str, int], closing_side: Side, take_profit: bool,
                      price: int, trigger_by: TriggerBy, parent: int, seq: int, ts_ms: int,
                      events: list[Event]) -> None:
        kind = tpsl.leg_kind(take_profit, TpSlMode.FULL)
        leg = self.waiting.full_leg(*key, kind)
        if leg is not None and price == 0:
            self.deactivate(leg, CancelReason.BY_USER, seq, ts_ms, events)
        elif leg is not None:
            leg.status = TRANSITIONS[leg.status, Happening.AMEND]
            leg.trigger_price_ticks = price
            leg.trigger_by = trigger_by
            leg.updated_ts_ms = ts_ms
            self.waiting.refile(leg)
            self._amended(leg, seq, ts_ms, events)
            self._recheck(leg)
        elif price:
            leg = self._leg(key, closing_side, take_profit, TpSlMode.FULL, price, trigger_by,
                            0, _MARKET, 0, parent, ts_ms)
            self._accept(leg, seq, ts_ms, events)
            self._recheck(leg)

    def _leg(self, key: tuple[int, str, int], closing_side: Side, take_profit: bool,
             mode: TpSlMode, price: int, trigger_by: TriggerBy, qty: int,
             order_type: OrderType, limit_price: int, parent: int,
             ts_ms: int) -> ConditionalOrder:
        account_id, symbol, idx = key
        leg = ConditionalOrder(
            self.engine.new_order_id(), account_id, symbol, closing_side, order_type,
            limit_price if order_type is not _MARKET else 0, qty,
            TimeInForce.IOC if order_type is _MARKET else TimeInForce.GTC, True, True, idx,
            "", SmpType.NONE, tpsl.leg_kind(take_profit, mode), price,
            tpsl.leg_direction(take_profit, closing_side), trigger_by, ts_ms)
        leg.tpsl_mode = mode
        leg.parent_order_id = parent
        return leg

    def _new_pair(self, key: tuple[int, str, int], closing_side: Side, qty: int, tp: int,
                  sl: int, tp_by: TriggerBy, sl_by: TriggerBy, tp_type: OrderType,
                  sl_type: OrderType, tp_limit: int, sl_limit: int, parent: int, seq: int,
                  ts_ms: int, events: list[Event]) -> tuple[int, int]:
        """Start a partial TP/SL pair (either leg may be absent); return the legs' ids."""
        legs = [self._leg(key, closing_side, take_profit, TpSlMode.PARTIAL, price, by, qty,
                          kind, limit, parent, ts_ms)
                for take_profit, price, by, kind, limit in ((True, tp, tp_by, tp_type, tp_limit),
                                                            (False, sl, sl_by, sl_type, sl_limit))
                if price]
        if len(legs) == 2:
            legs[0].pair_order_id, legs[1].pair_order_id = legs[1].order_id, legs[0].order_id
        for leg in legs:
            self._accept(leg, seq, ts_ms, events)
        for leg in legs:
            self._recheck(leg)
        tp_id = next((leg.order_id for leg in legs
                      if leg.stop_order_type is StopOrderType.PARTIAL_TAKE_PROFIT), 0)
        sl_id = next((leg.order_id for leg in legs
                      if leg.stop_order_type is StopOrderType.PARTIAL_STOP_LOSS), 0)
        return tp_id, sl_id

    def _set_trailing(self, key: tuple[int, str, int], closing_side: Side, distance: int,
                      stop: int, active: int, extreme: int, seq: int, ts_ms: int,
                      events: list[Event]) -> None:
        leg = self.waiting.full_leg(*key, _TRAILING)
        if leg is not None and not distance:
            self.deactivate(leg, CancelReason.BY_USER, seq, ts_ms, events)
            return
        if not distance:
            return
        if leg is None:
            account_id, symbol, idx = key
            leg = ConditionalOrder(
                self.engine.new_order_id(), account_id, symbol, closing_side, _MARKET, 0, 0,
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
            self._accept(leg, seq, ts_ms, events)
        else:
            self.waiting.refile(leg)
            self._amended(leg, seq, ts_ms, events)
        if extreme:
            events.append(TrailingStopMoved(seq, ts_ms, leg.order_id, leg.account_id,
                                            leg.symbol, leg.position_idx, stop, extreme))

    def _stops_set(self, account_id: int, symbol: str, position_idx: int, seq: int,
                   ts_ms: int, events: list[Event]) -> None:
        """Say what the position's Full TP/SL and trailing stop now are."""
        waiting = self.waiting
        tp = waiting.full_leg(account_id, symbol, position_idx, StopOrderType.TAKE_PROFIT)
        sl = waiting.full_leg(account_id, symbol, position_idx, StopOrderType.STOP_LOSS)
        trail = waiting.full_leg(account_id, symbol, position_idx, _TRAILING)
        events.append(TradingStopSet(
            seq, ts_ms, account_id, symbol, position_idx,
            tp.trigger_price_ticks if tp else 0, sl.trigger_price_ticks if sl else 0,
            tp.trigger_by if tp else _LAST, sl.trigger_by if sl else _LAST,
            trail.trailing_stop_ticks if trail else 0, trail.active_price_ticks if trail else 0))

    def _recheck(self, order: ConditionalOrder) -> None:
        # A TP/SL started from a fill may already be in the money: look at the price now.
        current = self.reference(order.symbol, order.trigger_by)
        if current is not None:
            self.price_moved(order.symbol, order.trigger_by, current)

    # -- the safe point -----------------------------------------------------------------------

    def settle(self, seq: int, ts_ms: int, events: list[Event]) -> None:
        """Bring waiting orders up to date with fills, positions and prices (module doc)."""
        if self._settling:
            return  # the outer loop picks up whatever this call would have done
        self._settling = True
        engine = self.engine
        clearing = engine.clearing
        waiting = self.waiting
        while True:
            # 1. and 2.: positions first, so a TP/SL whose position is gone never fires.
            if clearing.moved_positions:
                keys = sorted(clearing.moved_positions)
                clearing.moved_positions.clear()
                self._clear_unguarded(keys, seq, ts_ms, events)
                closing.fit_to_positions(engine, keys, seq, ts_ms, events)
            if clearing.watched_fills:
                self._start_filled(seq, ts_ms, events)
            if self._parents_left:
                left, self._parents_left = sorted(set(self._parents_left)), []
                for order_id in left:
                    if (order_id not in engine.open_orders
                            and order_id not in waiting.orders
                            and order_id not in clearing.watched_fills):
                        self._drop_attachment(order_id)
            if clearing.moved_positions:
                continue
            # 3. the next crossed trigger of the oldest point.
            if not waiting.points:
                break
            symbol, trigger_by, price = waiting.points[0]
            hit = waiting.index.next_crossed(symbol, trigger_by, price)
            if hit is None:
                waiting.points.popleft()
                continue
            order_id, kind = hit
            order = waiting.orders[order_id]
            if kind is EntryKind.FIRE:
                self._fire(order, price, seq, ts_ms, events)
            else:
                self._follow(order, price, seq, ts_ms, events)
        self._settling = False

    def _clear_unguarded(self, keys: list[tuple[int, str, int]], seq: int, ts_ms: int,
                         events: list[Event]) -> None:
        """Deactivate TP/SL and trailing stops whose position is gone or turned round."""
        clearing = self.engine.clearing
        for account_id, symbol, idx in keys:
            guards = self.waiting.guarding(account_id, symbol, idx)
            if not guards:
                continue
            changed = False
            for order in guards:
                if order.order_id in self.waiting.orders and not closing.closable_lots(
                        clearing, account_id, symbol, idx, order.side):
                    self.deactivate(order, CancelReason.TPSL_CLEARED, seq, ts_ms, events)
                    changed = changed or order.stop_order_type in _POSITION_LEGS
            if changed:
                self._stops_set(account_id, symbol, idx, seq, ts_ms, events)

    def _start_filled(self, seq: int, ts_ms: int, events: list[Event]) -> None:
        """Start the TP/SL of orders that filled (spec §10: TP/SL activate on fill)."""
        clearing = self.engine.clearing
        fills = sorted(clearing.watched_fills.items())
        clearing.watched_fills.clear()
        for order_id, lots in fills:
            attachment = self.waiting.attachments.get(order_id)
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
                self._set_full_leg(key, side.opposite, True, attachment.take_profit_ticks,
                                   attachment.tp_trigger_by, order_id, seq, ts_ms, events)
                self._set_full_leg(key, side.opposite, False, attachment.stop_loss_ticks,
                                   attachment.sl_trigger_by, order_id, seq, ts_ms, events)
                self._drop_attachment(order_id)
                self._stops_set(*key, seq, ts_ms, events)
                continue
            self._grow_pair(attachment, key, side.opposite, lots, order_id, seq, ts_ms, events)

    def _grow_pair(self, attachment: Attachment, key: tuple[int, str, int], closing_side: Side,
                   lots: int, parent: int, seq: int, ts_ms: int, events: list[Event]) -> None:
        """Size a Partial pair to the parent's fills: grow the live legs, or start a pair."""
        waiting = self.waiting
        legs = [waiting.orders[i] for i in (attachment.tp_order_id, attachment.sl_order_id)
                if i in waiting.orders]
        if legs:
            for leg in legs:
                leg.qty_lots += lots
                leg.updated_ts_ms = ts_ms
                self._amended(leg, seq, ts_ms, events)
            return
        attachment.tp_order_id, attachment.sl_order_id = self._new_pair(
            key, closing_side, lots, attachment.take_profit_ticks, attachment.stop_loss_ticks,
            attachment.tp_trigger_by, attachment.sl_trigger_by, attachment.tp_order_type,
            attachment.sl_order_type, attachment.tp_limit_price_ticks,
            attachment.sl_limit_price_ticks, parent, seq, ts_ms, events)

    def _follow(self, order: ConditionalOrder, price: int, seq: int, ts_ms: int,
                events: list[Event]) -> None:
        """Arm a trailing stop, or move it after a new extreme of the last price."""
        order.extreme_ticks = price
        distance = order.trailing_stop_ticks
        order.trigger_price_ticks = price - distance if order.side is Side.SELL else (
            price + distance)
        order.updated_ts_ms = ts_ms
        self.waiting.refile(order)
        events.append(TrailingStopMoved(seq, ts_ms, order.order_id, order.account_id,
                                        order.symbol, order.position_idx,
                                        order.trigger_price_ticks, price))

    def _fire(self, order: ConditionalOrder, price: int, seq: int, ts_ms: int,
              events: list[Event]) -> None:
        """Send a triggered order through the checks of a new order, or cancel it."""
        engine = self.engine
        waiting = self.waiting
        waiting.remove(order)
        order.status = TRANSITIONS[order.status, Happening.TRIGGER]
        order.updated_ts_ms = ts_ms
        events.append(OrderTriggered(seq, ts_ms, order.order_id, order.account_id, order.symbol,
                                     order.stop_order_type, order.trigger_by,
                                     order.trigger_price_ticks, price))
        pair = waiting.orders.get(order.pair_order_id)
        if pair is not None:
            pair.pair_order_id = 0
            self.deactivate(pair, CancelReason.OCO, seq, ts_ms, events)
        if order.stop_order_type in _POSITION_LEGS:
            self._stops_set(order.account_id, order.symbol, order.position_idx, seq, ts_ms,
                            events)
        if order.close_on_trigger:
            spec = engine.instruments[order.symbol]
            cap = (spec.max_mkt_order_qty_lots if order.order_type is _MARKET
                   else spec.max_order_qty_lots)
            wanted = order.qty_lots or min(cap, closing.closable_lots(
                engine.clearing, order.account_id, order.symbol, order.position_idx,
                order.side))
            closing.make_room(engine, order.account_id, order.symbol, order.position_idx,
                              order.side, wanted, seq, ts_ms, events)
        cmd = PlaceOrder(seq, ts_ms, order.account_id, order.symbol, order.side,
                         order.order_type, order.qty_lots, order.price_ticks or None,
                         order.time_in_force, order.reduce_only, order.close_on_trigger,
                         order.position_idx, order.order_link_id, order.smp_type)
        try:
            working_price, qty, reduce_only = validate_place(engine, cmd)
        except Rejected as rejection:
            order.status = TRANSITIONS[order.status, Happening.CANCEL]
            events.append(OrderCancelled(seq, ts_ms, order.order_id, order.account_id,
                                         order.symbol, order.qty_lots,
                                         CancelReason.REFUSED_AT_TRIGGER, rejection.code))
            self._drop_attachment(order.order_id)
            return
        sent = RestingOrder(order.order_id, order.account_id, order.symbol, order.side,
                            order.order_type, working_price, qty, order.time_in_force,
                            reduce_only, order.close_on_trigger, order.position_idx,
                            order.order_link_id, order.smp_type, ts_ms)
        sent.status = TRANSITIONS[order.status, Happening.ACCEPT]
        engine.run_order(sent, seq, ts_ms, events)
