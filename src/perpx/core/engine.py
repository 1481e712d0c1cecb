"""The engine: a deterministic state machine, `Engine.apply(command) -> list[Event]`.

It reads no clock and does no I/O; time and sequence arrive in commands. A user's mistake is a
rejection event and changes nothing; an exception out of `apply` is a bug.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from perpx.core import liquidation, settings, takeover
from perpx.core.book.book import OrderBook
from perpx.core.book.order import RestingOrder
from perpx.core.clearing import Clearing
from perpx.core.codes import RejectCode, Rejected
from perpx.core.commands import (
    AdjustMargin,
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    Command,
    Deposit,
    IndexPrice,
    MarkPrice,
    PlaceOrder,
    SetAutoAddMargin,
    SetFundingInterval,
    SetLeverage,
    SetMarginMode,
    SwitchPositionMode,
    Tick,
    Withdraw,
)
from perpx.core.enums import CancelReason, MarginMode, OrderType, Side, SmpType, TimeInForce
from perpx.core.errors import InvariantViolation
from perpx.core.events import (
    CommandRejected,
    Event,
    Liquidated,
    MarkPriceUpdated,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderRejected,
)
from perpx.core.instruments import InstrumentSpec, PriceLimitAction
from perpx.core.lifecycle import TRANSITIONS, Happening
from perpx.core.matching import match
from perpx.core.prices import order_price_band
from perpx.core.pricing import Pricing
from perpx.core.risk_index import RiskIndex

SNAPSHOT_VERSION = 1
_ORDER_LINK_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")

_BUY = Side.BUY
_MARKET = OrderType.MARKET
_GTC = TimeInForce.GTC
_IOC = TimeInForce.IOC
_FOK = TimeInForce.FOK
_POST_ONLY = TimeInForce.POST_ONLY


class Engine:
    """All exchange state, changed only by `apply`."""

    def __init__(self, instruments: Iterable[InstrumentSpec]) -> None:
        self.instruments: dict[str, InstrumentSpec] = {}
        self.books: dict[str, OrderBook] = {}
        for spec in instruments:
            if spec.symbol in self.instruments:
                raise ValueError(f"duplicate instrument {spec.symbol}")
            self.instruments[spec.symbol] = spec
            self.books[spec.symbol] = OrderBook(spec.symbol)
        self.open_orders: dict[int, RestingOrder] = {}
        self._by_link: dict[tuple[int, str], int] = {}
        self._by_account_symbol: dict[tuple[int, str], dict[int, RestingOrder]] = {}
        self.last_price: dict[str, int] = {}
        self.mark_price: dict[str, int] = {}
        self.index_price: dict[str, int] = {}
        self.last_seq = 0
        self.last_ts_ms = 0
        self.next_order_id = 1
        self.next_trade_id = 1
        # Bands by symbol; an entry is dropped whenever the symbol's last, mark or index moves.
        self._bands: dict[str, tuple[int, int]] = {}
        self.clearing = Clearing(self.instruments, self.mark_of, self.orders_of,
                                 self.mark_price.get, self.last_price.get,
                                 self.open_orders.get)
        clearing = self.clearing
        self.pricing = Pricing(self)
        self.risk = RiskIndex(self)
        # Scratch for the liquidation engine: each side's ADL ranking, valid for one command
        # (keyed by its seq), so never part of the state.
        self.adl_queues: dict[tuple[str, Side], takeover.AdlQueue] = {}
        pricing = self.pricing
        self._handlers: dict[type[Command], Callable[[Any, list[Event]], None]] = {
            PlaceOrder: self._place,
            AmendOrder: self._amend,
            CancelOrder: self._cancel,
            CancelAllOrders: self._cancel_all,
            MarkPrice: self._mark_price,
            Deposit: self._refusable(clearing.deposit),
            Withdraw: self._refusable(clearing.withdraw),
            SetLeverage: self._refusable(partial(settings.set_leverage, clearing)),
            SetMarginMode: self._refusable(partial(settings.set_margin_mode, clearing)),
            SwitchPositionMode: self._refusable(partial(settings.switch_position_mode, clearing)),
            AdjustMargin: self._refusable(partial(settings.adjust_margin, clearing)),
            SetAutoAddMargin: self._refusable(partial(settings.set_auto_add_margin, clearing)),
            IndexPrice: self._refusable(pricing.index_price),
            Tick: pricing.tick,
            SetFundingInterval: self._refusable(pricing.set_funding_interval),
        }

    # -- the one public mutator -------------------------------------------------------------

    def apply(self, command: Command) -> list[Event]:
        """Apply one sequenced command and return the events it caused, in order."""
        if command.seq <= self.last_seq:
            raise InvariantViolation(
                f"apply: seq must rise, got {command.seq} after {self.last_seq}"
            )
        if command.ts_ms < self.last_ts_ms:
            raise InvariantViolation(
                f"apply: time must not run back, got {command.ts_ms} after {self.last_ts_ms}"
            )
        self.last_seq = command.seq
        self.last_ts_ms = command.ts_ms
        events: list[Event] = []
        due = self.pricing.next_due_ms
        if due is not None and command.ts_ms >= due:
            self.pricing.settle_due(command.seq, command.ts_ms, events)
        self._handlers[type(command)](command, events)
        return events

    @staticmethod
    def _refusable(
        handler: Callable[[Any, list[Event]], None],
    ) -> Callable[[Any, list[Event]], None]:
        """Wrap a command so a refusal drops its events and becomes a `CommandRejected`.

        Operator commands carry no account and are answered for account 0.
        """

        def run(cmd: Any, events: list[Event]) -> None:
            start = len(events)
            try:
                handler(cmd, events)
            except Rejected as rejection:
                del events[start:]
                events.append(CommandRejected(cmd.seq, cmd.ts_ms,
                                              getattr(cmd, "account_id", 0),
                                              rejection.code, rejection.detail))

        return run

    # -- services for the liquidation engine ------------------------------------------------

    def new_order_id(self) -> int:
        """Take the next order id (for orders the exchange itself sends)."""
        order_id = self.next_order_id
        self.next_order_id = order_id + 1
        return order_id

    def run_order(self, order: RestingOrder, seq: int, ts_ms: int, events: list[Event]) -> None:
        """Run an order the exchange itself sends (no margin check) through the book."""
        events.append(
            OrderAccepted(seq, ts_ms, order.order_id, order.account_id, order.symbol,
                          order.side, order.order_type, order.price_ticks, order.qty_lots,
                          order.time_in_force, order.reduce_only, order.close_on_trigger,
                          order.position_idx, order.order_link_id, order.smp_type)
        )
        self._execute(order, seq, ts_ms, events)

    def cancel_order(self, order: RestingOrder, reason: CancelReason, seq: int, ts_ms: int,
                     events: list[Event]) -> None:
        """Cancel a resting order for the exchange's own reasons (liquidation, ADL)."""
        self._cancel_resting(order, reason, seq, ts_ms, events)

    def price_band(self, spec: InstrumentSpec) -> tuple[int, int] | None:
        """Return the current (min sell, max buy) price band of `spec`, if any."""
        return self._band(spec)

    def drop_band(self, symbol: str) -> None:
        """Forget the cached price band of `symbol`: one of its reference prices moved."""
        self._bands.pop(symbol, None)

    def _mark_price(self, cmd: MarkPrice, events: list[Event]) -> None:
        if cmd.symbol not in self.instruments or cmd.price_ticks <= 0:
            raise InvariantViolation(f"mark price {cmd.price_ticks} for {cmd.symbol} is invalid")
        self.mark_price[cmd.symbol] = cmd.price_ticks
        self._bands.pop(cmd.symbol, None)
        events.append(MarkPriceUpdated(cmd.seq, cmd.ts_ms, cmd.symbol, cmd.price_ticks))
        self.after_mark_move(cmd.symbol, cmd.seq, cmd.ts_ms, events)

    def after_mark_move(self, symbol: str, seq: int, ts_ms: int, events: list[Event]) -> None:
        """React to a new mark: auto margin replenishment first, then liquidation.

        Both look only at the accounts the risk index says the move may have breached.
        """
        mark = self.mark_price.get(symbol)
        if mark is None:
            return
        # A liquidation's close can fill resting orders into fresh positions that the mark
        # already breaches, so the sweep repeats until a round liquidates nobody.
        while True:
            self.risk.refresh(self.clearing.dirty)
            candidates = self.risk.candidates(symbol, mark)
            if not candidates:
                return
            before = len(events)
            liquidation.maybe_auto_add_margin(self.clearing, symbol, seq, ts_ms, events,
                                              candidates)
            takeover.maybe_liquidate(self, symbol, seq, ts_ms, events, candidates)
            # A candidate that survived was filed around older marks (a budget band it left,
            # or a trigger it crossed without breaching); refile it around the new ones.
            self.clearing.dirty.update(candidates)
            if not any(type(e) is Liquidated for e in events[before:]):
                return

    # -- queries ----------------------------------------------------------------------------

    def mark_of(self, symbol: str) -> int | None:
        """Return the price positions are valued at: mark, else last traded, else None."""
        mark = self.mark_price.get(symbol)
        return mark if mark is not None else self.last_price.get(symbol)

    def order(self, order_id: int) -> RestingOrder | None:
        """Return the open order with `order_id`, if any."""
        return self.open_orders.get(order_id)

    def orders_of(self, account_id: int, symbol: str) -> list[RestingOrder]:
        """Return an account's open orders on `symbol` by order id (the order they were placed)."""
        mine = self._by_account_symbol.get((account_id, symbol), {})
        return [mine[order_id] for order_id in sorted(mine)]

    def reference_price(self, symbol: str) -> int | None:
        """Return the price the band is built around: mark, else last traded, else None."""
        mark = self.mark_price.get(symbol)
        return mark if mark is not None else self.last_price.get(symbol)

    # -- orders -----------------------------------------------------------------------------

    def _place(self, cmd: PlaceOrder, events: list[Event]) -> None:
        try:
            price, qty, reduce_only = self._validate_place(cmd)
        except Rejected as rejection:
            events.append(
                OrderRejected(cmd.seq, cmd.ts_ms, cmd.account_id, cmd.symbol, rejection.code,
                              None, cmd.order_link_id, rejection.detail)
            )
            return
        order_id = self.next_order_id
        self.next_order_id = order_id + 1
        is_market = cmd.order_type is _MARKET
        tif = _IOC if is_market else cmd.time_in_force
        order = RestingOrder(
            order_id, cmd.account_id, cmd.symbol, cmd.side, cmd.order_type, price, qty,
            tif, reduce_only, cmd.close_on_trigger, cmd.position_idx, cmd.order_link_id,
            cmd.smp_type, cmd.ts_ms,
        )
        events.append(
            OrderAccepted(cmd.seq, cmd.ts_ms, order_id, cmd.account_id, cmd.symbol, cmd.side,
                          cmd.order_type, price, qty, tif, reduce_only,
                          cmd.close_on_trigger, cmd.position_idx, cmd.order_link_id,
                          cmd.smp_type)
        )
        self._execute(order, cmd.seq, cmd.ts_ms, events)

    def _execute(self, order: RestingOrder, seq: int, ts_ms: int, events: list[Event]) -> None:
        """Run an accepted order through its time in force: reject, match, rest or cancel."""
        book = self.books[order.symbol]
        tif = order.time_in_force
        price = order.price_ticks
        opposite = book.asks if order.side is _BUY else book.bids
        keys = opposite.keys
        crosses = bool(keys) and keys[0] <= price * opposite.sign
        if tif is _POST_ONLY:
            if crosses:
                self._end(order, CancelReason.POST_ONLY_WOULD_TAKE, seq, ts_ms, events)
                return
        elif tif is _FOK and self._fillable_lots(book, order) < order.leaves_lots:
            self._end(order, CancelReason.FOK_NOT_FILLABLE, seq, ts_ms, events)
            return
        stopped = False
        if crosses:
            self.next_trade_id, stopped, last_price = match(
                book, order, price, seq, ts_ms, self.next_trade_id, self._forget,
                self.clearing.settle, events
            )
            if last_price and last_price != self.last_price.get(order.symbol):
                self.last_price[order.symbol] = last_price
                self._bands.pop(order.symbol, None)
            if order.leaves_lots == 0:
                self._forget_if_known(order)
                return
        if stopped:
            self._end(order, CancelReason.SELF_MATCH, seq, ts_ms, events)
        elif tif is _IOC or tif is _FOK:
            reason = (CancelReason.IOC_REMAINDER if order.filled_lots
                      else CancelReason.NO_IMMEDIATE_QTY)
            self._end(order, reason, seq, ts_ms, events)
        else:
            (book.bids if order.side is _BUY else book.asks).add(order)
            self._remember(order)

    def _fillable_lots(self, book: OrderBook, order: RestingOrder) -> int:
        """Return how much of `order` could fill now, honouring its self-match prevention."""
        opposite = book.opposite(order.side)
        if order.smp_type is SmpType.NONE:
            return opposite.total_lots_within(order.price_ticks, order.leaves_lots)
        sign = opposite.sign
        total = 0
        for key in opposite.keys:
            if key > order.price_ticks * sign:
                break
            for maker in opposite.levels[key * sign].orders():
                if maker.account_id == order.account_id:
                    if order.smp_type is SmpType.CANCEL_MAKER:
                        continue
                    return total
                total += maker.leaves_lots
                if total >= order.leaves_lots:
                    return total
        return total

    def _validate_place(self, cmd: PlaceOrder) -> tuple[int, int, bool]:
        """Check an order; return its working price, quantity and reduce-only flag.

        Steps: 1. instrument, quantity and link id; 2. the price (market: the band's
        protection price; limit: range and band); 3. min notional; 4. position index,
        reduce-only and margin, by the clearing.
        """
        spec = self.instruments.get(cmd.symbol)
        if spec is None:
            raise Rejected(RejectCode.UNKNOWN_SYMBOL, f"symbol invalid: {cmd.symbol}")
        is_market = cmd.order_type is _MARKET
        qty = cmd.qty_lots
        if not spec.min_order_qty_lots <= qty <= (
            spec.max_mkt_order_qty_lots if is_market else spec.max_order_qty_lots
        ):
            self._check_qty(spec, qty, is_market)
        if cmd.order_link_id:
            if not _ORDER_LINK_ID.fullmatch(cmd.order_link_id):
                raise Rejected(RejectCode.INVALID_ORDER_LINK_ID, "orderLinkId invalid")
            if (cmd.account_id, cmd.order_link_id) in self._by_link:
                raise Rejected(RejectCode.DUPLICATE_ORDER_LINK_ID, "OrderLinkedID is duplicate")
        active = self._by_account_symbol.get((cmd.account_id, cmd.symbol))
        if active is not None and len(active) >= spec.max_active_orders:
            raise Rejected(RejectCode.TOO_MANY_ACTIVE_ORDERS,
                           f"Not allowed to have more than {spec.max_active_orders} active orders")
        if is_market:
            band = self._band(spec)
            if band is None:
                book = self.books[cmd.symbol]
                best = book.best_ask() if cmd.side is _BUY else book.best_bid()
                if best is None:
                    raise Rejected(RejectCode.NO_REFERENCE_PRICE,
                                   "no market price to protect a market order")
                band = order_price_band(spec, best)
                value_price = best
            else:
                value_price = self.reference_price(cmd.symbol) or 0
            price = band[1] if cmd.side is _BUY else band[0]
        else:
            if cmd.price_ticks is None:
                raise Rejected(RejectCode.INVALID_PRICE, "price is required for a limit order")
            price = self._checked_limit_price(spec, cmd.side, cmd.price_ticks)
            value_price = price
        if (not cmd.reduce_only
                and value_price * qty * spec.atoms_per_tick_lot < spec.min_notional_atoms):
            raise Rejected(RejectCode.NOTIONAL_BELOW_MIN,
                           "Order notional value below the lower limit")
        qty, reduce_only = self.clearing.check_order(
            cmd.account_id, spec, cmd.side, cmd.position_idx, cmd.reduce_only, qty, price)
        if not reduce_only and not is_market:
            self._check_beyond_liquidation(cmd, price)
        return price, qty, reduce_only

    def _check_beyond_liquidation(self, cmd: PlaceOrder, price: int) -> None:
        """Refuse a limit order that adds to an isolated position beyond its liquidation price.

        Spec §10: a limit order must be better than the position's liquidation price; a buy at
        or under a long's (a sell at or over a short's) would fill into a breached position.
        """
        account = self.clearing.accounts.get(cmd.account_id)
        if account is None or account.margin_mode is not MarginMode.ISOLATED:
            return
        position = account.positions.get((cmd.symbol, cmd.position_idx))
        if position is None or position.side is not cmd.side:
            return
        liq = liquidation.liquidation_price_ticks(self.clearing, position)
        if liq is not None and (price <= liq if cmd.side is _BUY else price >= liq):
            raise Rejected(RejectCode.WOULD_TRIGGER_LIQUIDATION,
                           "The order will trigger a forced liquidation, please re-submit the "
                           "order.")

    def _band(self, spec: InstrumentSpec) -> tuple[int, int] | None:
        """Return the (min_sell, max_buy) band of `spec` now; cached until a reference moves."""
        band = self._bands.get(spec.symbol)
        if band is None:
            reference = self.reference_price(spec.symbol)
            if reference is None:
                return None
            band = order_price_band(spec, reference, self.index_price.get(spec.symbol))
            self._bands[spec.symbol] = band
        return band

    def _check_qty(self, spec: InstrumentSpec, qty_lots: int, is_market: bool) -> None:
        if qty_lots <= 0:
            raise Rejected(RejectCode.INVALID_QTY, "Qty invalid")
        if qty_lots < spec.min_order_qty_lots:
            raise Rejected(RejectCode.QTY_BELOW_MIN,
                           "The number of contracts exceeds minimum limit allowed: too small")
        cap = spec.max_mkt_order_qty_lots if is_market else spec.max_order_qty_lots
        if qty_lots > cap:
            raise Rejected(RejectCode.QTY_ABOVE_MAX,
                           "The number of contracts exceeds maximum limit allowed: too large")

    def _checked_limit_price(self, spec: InstrumentSpec, side: Side, price_ticks: int) -> int:
        """Validate a limit price; clamp it into the band or refuse it, as the instrument says."""
        if price_ticks <= 0:
            raise Rejected(RejectCode.INVALID_PRICE, "price invalid")
        if not spec.min_price_ticks <= price_ticks <= spec.max_price_ticks:
            raise Rejected(RejectCode.PRICE_OUT_OF_RANGE, "Order price is out of permissible range")
        band = self._band(spec)
        if band is None:
            return price_ticks
        min_sell, max_buy = band
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

    def _find(self, account_id: int, symbol: str, order_id: int | None, link: str) -> RestingOrder:
        if symbol not in self.instruments:
            raise Rejected(RejectCode.UNKNOWN_SYMBOL, f"symbol invalid: {symbol}")
        if order_id is None and link:
            order_id = self._by_link.get((account_id, link))
        if order_id is None and not link:
            raise Rejected(RejectCode.INVALID_PARAMETER, "orderId or orderLinkId is required")
        order = self.open_orders.get(order_id) if order_id is not None else None
        if order is None or order.account_id != account_id or order.symbol != symbol:
            raise Rejected(RejectCode.ORDER_NOT_FOUND, "Order does not exist")
        return order

    def _amend(self, cmd: AmendOrder, events: list[Event]) -> None:
        try:
            order = self._find(cmd.account_id, cmd.symbol, cmd.order_id, cmd.order_link_id)
            spec = self.instruments[cmd.symbol]
            new_qty = order.qty_lots if cmd.qty_lots is None else cmd.qty_lots
            new_price = order.price_ticks if cmd.price_ticks is None else cmd.price_ticks
            if cmd.qty_lots is not None:
                if cmd.qty_lots <= order.filled_lots:
                    raise Rejected(RejectCode.AMEND_QTY_NOT_ABOVE_FILLED,
                                   "The modified contract quantity cannot be less than or equal "
                                   "to the filled quantity.")
                self._check_qty(spec, cmd.qty_lots, False)
            if cmd.price_ticks is not None:
                new_price = self._checked_limit_price(spec, order.side, cmd.price_ticks)
            if new_qty == order.qty_lots and new_price == order.price_ticks:
                raise Rejected(RejectCode.NOTHING_TO_AMEND, "order not modified")
            if (not order.reduce_only
                    and spec.notional_atoms(new_price, new_qty) < spec.min_notional_atoms):
                raise Rejected(RejectCode.NOTIONAL_BELOW_MIN,
                               "Order notional value below the lower limit")
            self.clearing.check_amend(order, new_price, new_qty - order.filled_lots)
        except Rejected as rejection:
            events.append(
                OrderRejected(cmd.seq, cmd.ts_ms, cmd.account_id, cmd.symbol, rejection.code,
                              cmd.order_id, cmd.order_link_id, rejection.detail)
            )
            return
        book_side = self.books[cmd.symbol].side(order.side)
        new_leaves = new_qty - order.filled_lots
        order.status = TRANSITIONS[order.status, Happening.AMEND]
        if new_price == order.price_ticks and new_qty < order.qty_lots:
            # Only a smaller quantity at the same price keeps the order's place in the queue.
            book_side.levels[order.price_ticks].total_lots -= order.leaves_lots - new_leaves
            self.clearing.order_left(order)
            order.qty_lots = new_qty
            order.leaves_lots = new_leaves
            order.updated_ts_ms = cmd.ts_ms
            self.clearing.order_rested(order)
            events.append(
                OrderAmended(cmd.seq, cmd.ts_ms, order.order_id, order.account_id, order.symbol,
                             new_price, new_qty, new_leaves, True)
            )
            return
        # Anything else queues anew: the old record dies in its queue, a twin runs as a taker.
        book_side.remove(order)
        self._forget(order)
        twin = order.requeued()
        twin.price_ticks = new_price
        twin.qty_lots = new_qty
        twin.leaves_lots = new_leaves
        twin.updated_ts_ms = cmd.ts_ms
        events.append(
            OrderAmended(cmd.seq, cmd.ts_ms, twin.order_id, twin.account_id, twin.symbol,
                         new_price, new_qty, new_leaves, False)
        )
        self._execute(twin, cmd.seq, cmd.ts_ms, events)

    def _cancel(self, cmd: CancelOrder, events: list[Event]) -> None:
        try:
            order = self._find(cmd.account_id, cmd.symbol, cmd.order_id, cmd.order_link_id)
        except Rejected as rejection:
            events.append(
                OrderRejected(cmd.seq, cmd.ts_ms, cmd.account_id, cmd.symbol, rejection.code,
                              cmd.order_id, cmd.order_link_id, rejection.detail)
            )
            return
        self._cancel_resting(order, CancelReason.BY_USER, cmd.seq, cmd.ts_ms, events)

    def _cancel_all(self, cmd: CancelAllOrders, events: list[Event]) -> None:
        if cmd.symbol not in self.instruments:
            events.append(
                OrderRejected(cmd.seq, cmd.ts_ms, cmd.account_id, cmd.symbol,
                              RejectCode.UNKNOWN_SYMBOL, None, "", f"symbol invalid: {cmd.symbol}")
            )
            return
        for order in self.orders_of(cmd.account_id, cmd.symbol):
            self._cancel_resting(order, CancelReason.BY_USER, cmd.seq, cmd.ts_ms, events)

    def _cancel_resting(
        self, order: RestingOrder, reason: CancelReason, seq: int, ts_ms: int, events: list[Event]
    ) -> None:
        self.books[order.symbol].side(order.side).remove(order)
        self._end(order, reason, seq, ts_ms, events)

    def _end(
        self, order: RestingOrder, reason: CancelReason, seq: int, ts_ms: int, events: list[Event]
    ) -> None:
        """Cancel what is left of `order` (already out of the book) and forget it."""
        order.status = TRANSITIONS[order.status, Happening.CANCEL]
        order.updated_ts_ms = ts_ms
        events.append(
            OrderCancelled(seq, ts_ms, order.order_id, order.account_id, order.symbol,
                           order.leaves_lots, reason)
        )
        self._forget_if_known(order)

    # -- the open-order indexes -------------------------------------------------------------

    def _remember(self, order: RestingOrder) -> None:
        self.clearing.order_rested(order)
        self.open_orders[order.order_id] = order
        if order.order_link_id:
            self._by_link[order.account_id, order.order_link_id] = order.order_id
        key = (order.account_id, order.symbol)
        mine = self._by_account_symbol.get(key)
        if mine is None:
            mine = self._by_account_symbol[key] = {}
        mine[order.order_id] = order

    def _forget(self, order: RestingOrder) -> None:
        self.clearing.order_left(order)
        del self.open_orders[order.order_id]
        if order.order_link_id:
            del self._by_link[order.account_id, order.order_link_id]
        key = (order.account_id, order.symbol)
        mine = self._by_account_symbol[key]
        del mine[order.order_id]
        if not mine:
            del self._by_account_symbol[key]

    def _forget_if_known(self, order: RestingOrder) -> None:
        if self.open_orders.get(order.order_id) is order:
            self._forget(order)

    # -- snapshots and the state hash -------------------------------------------------------

    def to_snapshot(self) -> dict[str, Any]:
        """Return the whole state as plain data (ints, strings, lists), in a canonical order."""
        return {
            "version": SNAPSHOT_VERSION,
            "last_seq": self.last_seq,
            "last_ts_ms": self.last_ts_ms,
            "next_order_id": self.next_order_id,
            "next_trade_id": self.next_trade_id,
            "symbols": sorted(self.instruments),
            "last_price": sorted(self.last_price.items()),
            "mark_price": sorted(self.mark_price.items()),
            "index_price": sorted(self.index_price.items()),
            "books": {
                symbol: [o.to_record() for o in self.books[symbol].orders_in_priority()]
                for symbol in sorted(self.books)
            },
            "clearing": self.clearing.to_snapshot(),
            "pricing": self.pricing.to_snapshot(),
        }

    @classmethod
    def from_snapshot(
        cls, instruments: Iterable[InstrumentSpec], snapshot: dict[str, Any]
    ) -> Engine:
        """Rebuild an engine from `to_snapshot`'s data and the same instruments."""
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported snapshot version {snapshot.get('version')}")
        engine = cls(instruments)
        if sorted(engine.instruments) != snapshot["symbols"]:
            raise ValueError("snapshot was taken with other instruments")
        engine.last_seq = snapshot["last_seq"]
        engine.next_order_id = snapshot["next_order_id"]
        engine.next_trade_id = snapshot["next_trade_id"]
        engine.last_ts_ms = snapshot["last_ts_ms"]
        # Filled in place: the clearing holds these dicts' lookups.
        engine.last_price.update(snapshot["last_price"])
        engine.mark_price.update(snapshot["mark_price"])
        engine.index_price.update(snapshot["index_price"])
        engine.clearing.restore(snapshot["clearing"])
        engine.pricing.restore(snapshot["pricing"])
        by_id: list[RestingOrder] = []
        for symbol, records in snapshot["books"].items():
            book = engine.books[symbol]
            for record in records:
                order = RestingOrder.from_record(record)
                book.side(order.side).add(order)
                by_id.append(order)
        for order in sorted(by_id, key=lambda o: o.order_id):
            engine._remember(order)
        return engine

    def state_hash(self) -> str:
        """Return a SHA-256 over the canonical snapshot: equal states, equal hashes."""
        encoded = json.dumps(self.to_snapshot(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(encoded.encode()).hexdigest()

    def check_invariants(self) -> None:
        """Raise `InvariantViolation` if any book or index disagrees with the others."""
        in_books: dict[int, RestingOrder] = {}
        for book in self.books.values():
            book.check_invariants()
            for order in book.orders_in_priority():
                in_books[order.order_id] = order
        if in_books.keys() != self.open_orders.keys():
            raise InvariantViolation("open-order index and books disagree")
        for order_id, order in self.open_orders.items():
            if in_books[order_id] is not order:
                raise InvariantViolation(f"order {order_id} indexed but not the one in the book")
            if order.qty_lots != order.filled_lots + order.leaves_lots:
                raise InvariantViolation(f"order {order_id}: qty != filled + leaves")
        indexed = sum(len(m) for m in self._by_account_symbol.values())
        if indexed != len(self.open_orders):
            raise InvariantViolation("per-account order index disagrees with open orders")
        self.clearing.check_invariants()
        self._check_order_sums()

    def _check_order_sums(self) -> None:
        """Recount every account's open-order sums from the resting orders themselves."""
        expected: dict[tuple[int, str, int, Side], tuple[int, int]] = {}
        for order in self.open_orders.values():
            if order.reduce_only:
                continue
            key = (order.account_id, order.symbol, order.position_idx, order.side)
            leaves, notional = expected.get(key, (0, 0))
            expected[key] = (leaves + order.leaves_lots, notional + self.instruments[
                order.symbol].notional_atoms(order.price_ticks, order.leaves_lots))
        actual = {
            (account.account_id, *key): (sums.leaves_lots, sums.notional_atoms)
            for account in self.clearing.accounts.values()
            for key, sums in account.order_sums.items()
        }
        if actual != expected:
            raise InvariantViolation(f"open-order sums {actual} != recount {expected}")

