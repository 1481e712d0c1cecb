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

from typing import TYPE_CHECKING, Final

from perpx.core.account.clearing import Clearing
from perpx.core.book.order import RestingOrder
from perpx.core.codes import RejectCode, Rejected
from perpx.core.commands import AmendOrder, PlaceOrder
from perpx.core.enums import (
    CancelReason,
    OrderFilter,
    OrderType,
    PositionMode,
    Side,
    StopOrderType,
    TimeInForce,
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
    TrailingStopMoved,
)
from perpx.core.lifecycle import TRANSITIONS, Happening
from perpx.core.market import Market
from perpx.core.orders import closing, tpsl
from perpx.core.orders.conditional import Attachment, ConditionalOrder, Waiting
from perpx.core.orders.rules import (
    check_min_notional,
    check_order_link_id,
    check_order_price,
    check_position_idx,
    check_qty,
    closes_hedge_side,
    max_qty_lots,
)
from perpx.core.orders.triggers import EntryKind
from perpx.core.orders.validation import validate_place
from perpx.core.ports import OrderRunner

if TYPE_CHECKING:
    from perpx.core.instruments import InstrumentSpec

MAX_CONDITIONAL_ORDERS: Final = 10  # per account and symbol (Bybit)
_MARKET: Final = OrderType.MARKET
_RISING: Final = TriggerDirection.RISING
_LAST: Final = TriggerBy.LAST_PRICE
_MARK: Final = TriggerBy.MARK_PRICE
_TRAILING: Final = StopOrderType.TRAILING_STOP


class Stops:
    """Waiting orders of the engine and the rules that place, change and fire them."""

    def __init__(self, market: Market, clearing: Clearing, runner: OrderRunner) -> None:
        self.market = market
        self.clearing = clearing
        # Fired orders, the room a close-on-trigger makes and TP/SL legs go through the
        # engine's order runner; bound once, they cost no lookup on the way.
        self.runner = runner
        self.new_order_id = runner.new_order_id
        self.waiting = Waiting(market.by_link)
        self._settling = False
        # Orders carrying TP/SL that left the book; their attachment goes once all fills
        # are seen.
        self._parents_left: list[int] = []

    # -- prices -----------------------------------------------------------------------------

    def reference(self, symbol: str, trigger_by: TriggerBy) -> int | None:
        """Return the symbol's current last, mark or index price, if there is one."""
        market = self.market
        if trigger_by is _LAST:
            return market.last_price.get(symbol)
        if trigger_by is _MARK:
            return market.mark_price.get(symbol)
        return market.index_price.get(symbol)

    def price_moved(self, symbol: str, trigger_by: TriggerBy, price_ticks: int) -> None:
        """Queue a price point for the triggers that watch this reference, if any do."""
        waiting = self.waiting
        if waiting.index.watches(symbol, trigger_by):
            waiting.points.append((symbol, trigger_by, price_ticks))

    def busy(self) -> bool:
        """Tell whether `settle` has anything to do."""
        # Asked after every command. Tested one by one as conditions: compiled, each is its
        # container's own size test, where ``bool(a or b or ...)`` of containers of
        # different types carries an object along and tests it generically; a set by its
        # size (`len` is a primitive, a set's truth a generic call).
        clearing = self.clearing
        if len(clearing.moved_positions) or clearing.watched_fills or self._parents_left:
            return True
        return len(self.waiting.points) != 0

    def parent_left(self, order_id: int) -> None:
        """Note that an order carrying TP/SL left the book (filled, cancelled or re-queued)."""
        if order_id in self.waiting.attachments:
            self._parents_left.append(order_id)

    # -- placing ----------------------------------------------------------------------------

    def place(self, cmd: PlaceOrder, events: list[Event]) -> None:
        """Accept a conditional order as Untriggered, or raise `Rejected`."""
        clearing = self.clearing
        spec = clearing.spec_of(cmd.symbol)
        account = clearing.user_account(cmd.account_id)
        is_market = cmd.order_type is _MARKET
        reduce_only = cmd.reduce_only or cmd.close_on_trigger
        if cmd.qty_lots != 0 or not cmd.close_on_trigger:
            check_qty(spec, cmd.qty_lots, is_market)
        check_order_link_id(cmd.order_link_id, cmd.account_id, self.market.by_link)
        if self.waiting.stop_count(cmd.account_id, cmd.symbol) >= MAX_CONDITIONAL_ORDERS:
            raise Rejected(RejectCode.TOO_MANY_CONDITIONAL_ORDERS,
                           "The number of stop orders exceeds the maximum allowable limit")
        hedge = account.position_mode(cmd.symbol) is PositionMode.HEDGE
        check_position_idx(hedge, cmd.position_idx)
        reduce_only = reduce_only or closes_hedge_side(hedge, cmd.position_idx, cmd.side)
        if cmd.trigger_direction is None:
            raise Rejected(RejectCode.INVALID_PARAMETER,
                           "params error: triggerDirection is required")
        trigger = cmd.trigger_price_ticks or 0
        self._check_trigger(spec, trigger, cmd.trigger_direction, cmd.trigger_by)
        price = 0
        if not is_market:
            price = cmd.price_ticks or 0
            check_order_price(spec, price)
        check_min_notional(spec, price or trigger, cmd.qty_lots, reduce_only)
        attachment = tpsl.attachment_for(cmd, spec, reduce_only, price or trigger)
        order = ConditionalOrder(
            self.new_order_id(), cmd.account_id, cmd.symbol, cmd.side, cmd.order_type, price,
            cmd.qty_lots, TimeInForce.IOC if is_market else cmd.time_in_force, reduce_only,
            cmd.close_on_trigger, cmd.position_idx, cmd.order_link_id, cmd.smp_type,
            StopOrderType.STOP, trigger, cmd.trigger_direction, cmd.trigger_by, cmd.ts_ms)
        self.accept(order, cmd.seq, cmd.ts_ms, events)
        if attachment is not None:
            self.attach(attachment, order.order_id, order.account_id, order.symbol, cmd.seq,
                        cmd.ts_ms, events)

    def _check_trigger(self, spec: InstrumentSpec, trigger: int, direction: TriggerDirection,
                       trigger_by: TriggerBy) -> None:
        """Refuse a trigger off the price grid's range or on the wrong side of the price now.

        With no such price yet (no trade, mark or index) any side is accepted: the first
        price decides.
        """
        check_order_price(spec, trigger, "params error: triggerPrice invalid")
        current = self.reference(spec.symbol, trigger_by)
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
        self.clearing.fill_watch.add(order_id)
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
        self.drop_attachment(order.order_id)
        if new is not None:
            self.attach(new, order.order_id, order.account_id, order.symbol, seq, ts_ms, events)
        elif old is not None:
            events.append(TpSlAttached(
                seq, ts_ms, order.order_id, order.account_id, order.symbol, old.mode, 0, 0,
                old.tp_trigger_by, old.sl_trigger_by, old.tp_order_type, old.sl_order_type, 0,
                0))

    def drop_attachment(self, order_id: int) -> None:
        """Forget the TP/SL an order carried (it ended, or they fired or changed)."""
        if self.waiting.attachments.pop(order_id, None) is not None:
            self.clearing.fill_watch.discard(order_id)

    def accept(self, order: ConditionalOrder, seq: int, ts_ms: int,
               events: list[Event]) -> None:
        """Keep a new waiting order and say so (status Untriggered)."""
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
        spec = self.market.instruments[order.symbol]
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
            check_order_price(spec, cmd.price_ticks)
            price = cmd.price_ticks
        trigger_by = cmd.trigger_by if cmd.trigger_by is not None else order.trigger_by
        trigger = (cmd.trigger_price_ticks if cmd.trigger_price_ticks is not None
                   else order.trigger_price_ticks)
        moved = trigger != order.trigger_price_ticks or trigger_by is not order.trigger_by
        if moved:
            self._check_trigger(spec, trigger, order.trigger_direction, trigger_by)
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
        if qty:  # 0: the whole position at trigger, a close that has no notional yet
            check_min_notional(spec, price or trigger, qty, order.reduce_only)
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
            self.amended(pair, cmd.seq, cmd.ts_ms, events)
        self.waiting.refile(order)
        self.amended(order, cmd.seq, cmd.ts_ms, events)
        if not tpsl.same_attachment(old, new):
            self.replace_attachment(order, new, cmd.seq, cmd.ts_ms, events)
        if order.stop_order_type in tpsl.POSITION_LEGS:
            tpsl.publish(self, order.account_id, order.symbol, order.position_idx, cmd.seq,
                            cmd.ts_ms, events)

    def amended(self, order: ConditionalOrder, seq: int, ts_ms: int,
                events: list[Event]) -> None:
        """Say what a waiting order's figures now are."""
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
        self.drop_attachment(order.order_id)
        pair = self.waiting.orders.get(order.pair_order_id)
        if pair is not None:
            pair.pair_order_id = 0
            self.amended(pair, seq, ts_ms, events)

    def cancel(self, order: ConditionalOrder, seq: int, ts_ms: int,
               events: list[Event]) -> None:
        """Cancel a waiting order at its owner's request."""
        self.deactivate(order, CancelReason.BY_USER, seq, ts_ms, events)
        if order.stop_order_type in tpsl.POSITION_LEGS:
            tpsl.publish(self, order.account_id, order.symbol, order.position_idx, seq, ts_ms,
                            events)

    def cancel_all(self, account_id: int, symbol: str, order_filter: OrderFilter, seq: int,
                   ts_ms: int, events: list[Event],
                   reason: CancelReason = CancelReason.BY_USER) -> None:
        """Cancel the account's waiting orders on `symbol` that `order_filter` selects.

        `reason` is the user's request unless the exchange cancels (a future's delivery).
        """
        if order_filter is OrderFilter.ORDER:
            return
        touched: set[int] = set()
        for order in self.waiting.of(account_id, symbol):
            if order.order_id not in self.waiting.orders:
                continue  # went with its pair
            if order_filter is OrderFilter.ALL or (
                    order.is_tpsl == (order_filter is OrderFilter.TPSL_ORDER)):
                self.deactivate(order, reason, seq, ts_ms, events)
                if order.stop_order_type in tpsl.POSITION_LEGS:
                    touched.add(order.position_idx)
        for idx in sorted(touched):
            tpsl.publish(self, account_id, symbol, idx, seq, ts_ms, events)

    def recheck(self, order: ConditionalOrder) -> None:
        """Look at a new or moved TP/SL against the price now: it may be in the money."""
        current = self.reference(order.symbol, order.trigger_by)
        if current is not None:
            self.price_moved(order.symbol, order.trigger_by, current)

    # -- the safe point -----------------------------------------------------------------------

    def settle(self, seq: int, ts_ms: int, events: list[Event]) -> None:
        """Bring waiting orders up to date with fills, positions and prices (module doc)."""
        if self._settling:
            return  # the outer loop picks up whatever this call would have done
        self._settling = True
        market = self.market
        clearing = self.clearing
        waiting = self.waiting
        while True:
            # 1. and 2.: positions first, so a TP/SL whose position is gone never fires.
            if clearing.moved_positions:
                keys = sorted(clearing.moved_positions)
                clearing.moved_positions.clear()
                tpsl.clear_unguarded(self, keys, seq, ts_ms, events)
                closing.fit_to_positions(market, clearing, self.runner, keys, seq, ts_ms,
                                         events)
            if clearing.watched_fills:
                tpsl.start_filled(self, seq, ts_ms, events)
            if self._parents_left:
                left, self._parents_left = sorted(set(self._parents_left)), []
                for order_id in left:
                    if (order_id not in market.open_orders
                            and order_id not in waiting.orders
                            and order_id not in clearing.watched_fills):
                        self.drop_attachment(order_id)
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
        market = self.market
        clearing = self.clearing
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
        if order.stop_order_type in tpsl.POSITION_LEGS:
            tpsl.publish(self, order.account_id, order.symbol, order.position_idx, seq, ts_ms,
                            events)
        if order.close_on_trigger:
            cap = max_qty_lots(market.instruments[order.symbol], order.order_type is _MARKET)
            wanted = order.qty_lots or min(cap, closing.closable_lots(
                clearing, order.account_id, order.symbol, order.position_idx, order.side))
            closing.make_room(market, clearing, self.runner, order.account_id, order.symbol,
                              order.position_idx, order.side, wanted, seq, ts_ms, events)
        cmd = PlaceOrder(seq, ts_ms, order.account_id, order.symbol, order.side,
                         order.order_type, order.qty_lots, order.price_ticks or None,
                         order.time_in_force, order.reduce_only, order.close_on_trigger,
                         order.position_idx, order.order_link_id, order.smp_type)
        try:
            working_price, qty, reduce_only = validate_place(market, clearing, cmd)
        except Rejected as rejection:
            order.status = TRANSITIONS[order.status, Happening.CANCEL]
            events.append(OrderCancelled(seq, ts_ms, order.order_id, order.account_id,
                                         order.symbol, order.qty_lots,
                                         CancelReason.REFUSED_AT_TRIGGER, rejection.code))
            self.drop_attachment(order.order_id)
            return
        sent = RestingOrder(order.order_id, order.account_id, order.symbol, order.side,
                            order.order_type, working_price, qty, order.time_in_force,
                            reduce_only, order.close_on_trigger, order.position_idx,
                            order.order_link_id, order.smp_type, ts_ms)
        sent.status = TRANSITIONS[order.status, Happening.ACCEPT]
        self.runner.run_order(sent, seq, ts_ms, events)
        self.parent_left(sent.order_id)  # its attachment goes unless it rests
