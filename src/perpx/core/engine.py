"""The engine: a deterministic state machine, `Engine.apply(command) -> list[Event]`.

It reads no clock and does no I/O; time and sequence arrive in commands. A user's mistake is a
rejection event and changes nothing; an exception out of `apply` is a bug.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, Final, cast

from msgspec.structs import astuple

from perpx.core import invariants
from perpx.core.account import settings
from perpx.core.account.clearing import (
    MARGIN_REFUSED,
    NO_BALANCE_CODE,
    NO_BALANCE_DETAIL,
    Clearing,
)
from perpx.core.account.collateral import HOUR_MS, CollateralTable, next_interest_ms
from perpx.core.account.portfolio import PmParams
from perpx.core.account.venue import venue_params_from_record, venue_params_record
from perpx.core.book.book import OrderBook
from perpx.core.book.fills import Fill
from perpx.core.book.order import RestingOrder
from perpx.core.codes import RejectCode, Rejected
from perpx.core.commands import (
    AdjustMargin,
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    Command,
    Deposit,
    IndexPrice,
    ListInstrument,
    MarkPrice,
    PlaceOrder,
    RepayLiability,
    SetAutoAddMargin,
    SetCollateralSwitch,
    SetFundingInterval,
    SetLeverage,
    SetMarginMode,
    SetTradingStop,
    SetVenueParams,
    SwitchPositionMode,
    Tick,
    Withdraw,
)
from perpx.core.delivery import Delivery
from perpx.core.enums import (
    CancelReason,
    OrderFilter,
    OrderType,
    PositionMode,
    Side,
    TimeInForce,
    TriggerBy,
)
from perpx.core.errors import InvariantViolation
from perpx.core.events import (
    CommandRejected,
    Event,
    InstrumentListed,
    Liquidated,
    MarkPriceUpdated,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderRejected,
    Trade,
    VenueParamsSet,
)
from perpx.core.instruments import InstrumentSpec, dated_symbol, spec_from_record, spec_record
from perpx.core.keys import position_key
from perpx.core.lifecycle import TRANSITIONS, Happening, advance, after_row
from perpx.core.market import Market, index_link, linked_order_id, unindex_link
from perpx.core.orders import closing, tpsl
from perpx.core.orders.conditional import ConditionalOrder
from perpx.core.orders.rules import check_min_notional, check_qty
from perpx.core.orders.stops import Stops
from perpx.core.orders.validation import checked_limit_price, validate_order
from perpx.core.prices.pricing import Pricing
from perpx.core.risk import liquidation, takeover
from perpx.core.risk.risk_index import RiskIndex
from perpx.core.risk.takeover import LiquidationDesk
from perpx.core.settlement import reduce_room, settle_steps

SNAPSHOT_VERSION: Final = 2
_LAST: Final = TriggerBy.LAST_PRICE
_CANCEL: Final = Happening.CANCEL
_AFTER_CANCEL: Final = after_row(_CANCEL)  # its row of the lifecycle table
_BY_USER: Final = CancelReason.BY_USER

_BUY: Final = Side.BUY
_SELL: Final = Side.SELL
_MARKET: Final = OrderType.MARKET
_GTC: Final = TimeInForce.GTC
_IOC: Final = TimeInForce.IOC
_FOK: Final = TimeInForce.FOK
_POST_ONLY: Final = TimeInForce.POST_ONLY
# Bound once: compiled, a name imported from a pure module (the events and commands are
# msgspec Structs) is looked up in the module's dict at each use; a Final is a C static.
_ORDER_ACCEPTED: Final = OrderAccepted
_ORDER_REJECTED: Final = OrderRejected
_ORDER_CANCELLED: Final = OrderCancelled
_TRADE: Final = Trade
_ASTUPLE: Final = astuple
_PLACE_ORDER: Final = PlaceOrder
_CANCEL_ORDER: Final = CancelOrder
# `PlaceOrder`'s fields in the order `_place` unpacks them.
PLACE_FIELDS: Final = (
    "seq", "ts_ms", "account_id", "symbol", "side", "order_type", "qty_lots", "price_ticks",
    "time_in_force", "reduce_only", "close_on_trigger", "position_idx", "order_link_id",
    "smp_type", "trigger_price_ticks", "trigger_direction", "trigger_by", "take_profit_ticks",
    "stop_loss_ticks", "tp_trigger_by", "sl_trigger_by", "tpsl_mode", "tp_order_type",
    "sl_order_type", "tp_limit_price_ticks", "sl_limit_price_ticks",
)
# `CancelOrder`'s fields in the order `_cancel` unpacks them.
CANCEL_FIELDS: Final = ("seq", "ts_ms", "account_id", "symbol", "order_id", "order_link_id")
# `_lookup`'s commonest refusal, built once: a cancel of an order that has just left is
# common, and a tuple returned through a union is otherwise built anew per refusal. Typed as a
# tuple of any length so that mypyc keeps the one tuple object (a `tuple[RejectCode, str]`
# is an unboxed pair when compiled, boxed anew wherever it becomes an object).
_ORDER_NOT_FOUND: Final[tuple[Any, ...]] = (RejectCode.ORDER_NOT_FOUND, "Order does not exist")
# `Trade`'s fields in the order `_sweep_traded` unpacks them.
TRADE_FIELDS: Final = (
    "seq", "ts_ms", "trade_id", "symbol", "price_ticks", "qty_lots", "taker_side",
    "taker_order_id", "taker_account_id", "maker_order_id", "maker_account_id",
    "taker_leaves_lots", "maker_leaves_lots",
)


class Engine:
    """All exchange state, changed only by `apply`."""

    def __init__(self, instruments: Iterable[InstrumentSpec],
                 collateral: CollateralTable | None = None,
                 pm_params: PmParams | None = None) -> None:
        # The market state every subsystem reads; its dicts and queries are bound here too
        # (the same objects), so the engine's own paths and its callers look nothing up twice.
        market = self.market = Market(instruments)
        self.instruments = market.instruments
        self.books = market.books
        self.open_orders = market.open_orders
        self.by_link = market.by_link
        self.orders_by_account = market.orders_by_account
        self.last_price = market.last_price
        self.mark_price = market.mark_price
        self.index_price = market.index_price
        self.bands = market.bands
        self.mark_of = market.mark_of
        self.orders_of = market.orders_of
        self.order = market.order
        self.reference_price = market.reference_price
        self.price_band = market.price_band
        self.last_seq = 0
        self.last_ts_ms = 0
        # The next hh:05, when interest on liabilities is charged (derived from last_ts_ms).
        self.interest_due_ms = next_interest_ms(0)
        self.next_order_id = 1
        self.next_trade_id = 1
        self.clearing = Clearing(market.instruments, market.mark_of, market.orders_of,
                                 market.mark_price.get, market.last_price.get,
                                 market.open_orders.get, market.index_price.get, collateral,
                                 pm_params, market.orders_by_account, market)
        clearing = self.clearing
        # The subsystems get the market, the clearing and the engine as the protocols they
        # need (`perpx.core.ports`): the order runner, and the reactions to a new mark.
        self.stops = Stops(market, clearing, self)
        self.risk = RiskIndex(market, clearing)
        self.liquidation = LiquidationDesk(market, clearing, self)
        self.adl_pool = self.liquidation.adl_pool
        # Dated futures' clocks and delivery; `dated` is its clocks, read by every order.
        self.delivery = Delivery(market, clearing, self.stops, self, self.liquidation, self)
        self.dated = self.delivery.clocks
        self.pricing = Pricing(market, clearing, self.stops, self, self.delivery)
        # Specs listed by `ListInstrument`, as its records, in listing order (for snapshots).
        self.listed: list[dict[str, Any]] = []
        # The record of the last accepted `SetVenueParams` (None: the parameters given here).
        self.venue_params: dict[str, Any] | None = None
        self._reduce_room = partial(reduce_room, clearing)
        # Bound once: `self._forget` read as a value builds a bound method at each walk.
        self._close_maker: Callable[[RestingOrder], None] = self._forget
        pricing = self.pricing
        # `PlaceOrder` and `CancelOrder` are not here: `apply` calls their handlers itself.
        self._handlers: dict[type[Command], Callable[[Any, list[Event]], None]] = {
            AmendOrder: self._amend,
            CancelAllOrders: self._cancel_all,
            MarkPrice: self._mark_price,
            Deposit: self._refusable(clearing.deposit),
            Withdraw: self._refusable(clearing.withdraw),
            SetLeverage: self._refusable(partial(settings.set_leverage, clearing)),
            SetMarginMode: self._refusable(partial(settings.set_margin_mode, clearing)),
            SetCollateralSwitch: self._refusable(clearing.set_collateral_switch),
            RepayLiability: self._refusable(clearing.repay),
            SwitchPositionMode: self._refusable(self._switch_position_mode),
            SetTradingStop: self._refusable(partial(tpsl.set_trading_stop, self.stops)),
            AdjustMargin: self._refusable(partial(settings.adjust_margin, clearing)),
            SetAutoAddMargin: self._refusable(partial(settings.set_auto_add_margin, clearing)),
            IndexPrice: self._refusable(pricing.index_price),
            Tick: pricing.tick,
            SetFundingInterval: self._refusable(pricing.set_funding_interval),
            ListInstrument: self._refusable(self._list_instrument),
            SetVenueParams: self._refusable(self._set_venue_params),
        }

    # -- the one public mutator -------------------------------------------------------------

    def apply(self, command: Command) -> list[Event]:
        """Apply one sequenced command and return the events it caused, in order."""
        # The two commands of nearly every stream are read whole, in one `astuple` (their
        # handlers unpack it), and seq and time taken from it: compiled, each read of a
        # msgspec Struct's field is a generic attribute lookup (~180 instructions). Others'
        # two fields are read once each.
        kind = type(command)
        fields: tuple[Any, ...] = ()
        if kind is _PLACE_ORDER or kind is _CANCEL_ORDER:
            fields = _ASTUPLE(command)
            seq: int = fields[0]
            ts_ms: int = fields[1]
        else:
            seq = command.seq
            ts_ms = command.ts_ms
        if seq <= self.last_seq:
            raise InvariantViolation(
                f"apply: seq must rise, got {seq} after {self.last_seq}"
            )
        if ts_ms < self.last_ts_ms:
            raise InvariantViolation(
                f"apply: time must not run back, got {ts_ms} after {self.last_ts_ms}"
            )
        self.last_seq = seq
        self.last_ts_ms = ts_ms
        events: list[Event] = []
        if ts_ms >= self.interest_due_ms:
            self._charge_interest(seq, ts_ms, events)
        due = self.pricing.next_due_ms
        if due is not None and ts_ms >= due:
            self.pricing.settle_due(seq, ts_ms, events)
        due = self.delivery.next_due_ms
        if due is not None and ts_ms >= due:
            self.delivery.deliver_due(seq, ts_ms, events)
        start = len(events)
        trade_id = self.next_trade_id
        # The two commands of nearly every stream are called directly: compiled, a native
        # method call, where the table's bound methods are generic Python calls.
        if kind is _PLACE_ORDER:
            self._place(cast(PlaceOrder, command), fields, events)
        elif kind is _CANCEL_ORDER:
            self._cancel(fields, events)
        else:
            self._handlers[kind](command, events)
        # A set's size is a primitive when compiled; its truth is a generic call.
        if len(self.clearing.moved_positions):
            self._drop_unwatched_moves()
        if self.stops.busy():
            self.stops.settle(seq, ts_ms, events)
        if self.next_trade_id != trade_id:
            self._sweep_traded(events, start, seq, ts_ms)
        return events

    def _charge_interest(self, seq: int, ts_ms: int, events: list[Event]) -> None:
        """Charge each hh:05 passed since the last command its hour of interest (§4.4).

        At most a week of hours at once: a venue is never silent that long, and a replay
        that jumps in time should not loop for ever.
        """
        due = self.interest_due_ms
        for _ in range(168):
            if ts_ms < due:
                break
            self.clearing.charge_interest(seq, ts_ms, events, due)
            due += HOUR_MS
        self.interest_due_ms = next_interest_ms(ts_ms)

    def _drop_unwatched_moves(self) -> None:
        """Forget moved positions that no TP/SL and no reduce-only order watches.

        The trigger engine's first step would look such a position up and find nothing to
        do, so leaving it out changes nothing; most fills move only such positions, and
        then the trigger engine need not run at all.
        """
        moved = self.clearing.moved_positions
        guarded = self.stops.waiting.by_position
        reduce_only = self.clearing.reduce_only_orders
        if not guarded and not reduce_only:
            moved.clear()
            return
        idle = [key for key in moved
                if key not in guarded and (*key, _BUY) not in reduce_only
                and (*key, _SELL) not in reduce_only]
        moved.difference_update(idle)

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

    def _mark_price(self, cmd: MarkPrice, events: list[Event]) -> None:
        if cmd.symbol not in self.instruments or cmd.price_ticks <= 0:
            raise InvariantViolation(f"mark price {cmd.price_ticks} for {cmd.symbol} is invalid")
        self.mark_price[cmd.symbol] = cmd.price_ticks
        self.bands.pop(cmd.symbol, None)
        events.append(MarkPriceUpdated(cmd.seq, cmd.ts_ms, cmd.symbol, cmd.price_ticks))
        self.after_mark_move(cmd.symbol, cmd.seq, cmd.ts_ms, events)

    def after_mark_move(self, symbol: str, seq: int, ts_ms: int, events: list[Event]) -> None:
        """React to a new mark: triggers first, then auto margin replenishment and liquidation.

        A stop loss watching the mark fires before liquidation looks (it stands ahead of the
        liquidation price). AMR and liquidation look only at the accounts the risk index
        says the move may have breached.
        """
        mark = self.mark_price.get(symbol)
        if mark is None:
            return
        self.stops.price_moved(symbol, TriggerBy.MARK_PRICE, mark)
        self.sweep(symbol, seq, ts_ms, events)

    def after_index_move(self, symbol: str, seq: int, ts_ms: int, events: list[Event]) -> None:
        """Sweep on an index move that left the mark unchanged, if some pool watches the index.

        Only USD pools and portfolio-margin accounts are filed by index (`RiskIndex`), so a
        venue without them does nothing here.
        """
        if self.risk.watches_index(symbol):
            self.sweep(symbol, seq, ts_ms, events)

    def sweep(self, symbol: str, seq: int, ts_ms: int, events: list[Event]) -> None:
        """Replenish and liquidate what the current mark of `symbol` breaches.

        Called on every mark move, and after a funding settlement (margin taken by funding
        can breach a position at an unchanged mark; #13 B1).
        """
        mark = self.mark_price.get(symbol)
        if mark is None:
            return
        stops = self.stops
        # A liquidation's close, or a triggered order, can fill resting orders into fresh
        # positions that the mark already breaches, so the sweep repeats until a round
        # liquidates nobody and leaves no trigger to look at.
        while True:
            if stops.busy():
                stops.settle(seq, ts_ms, events)
            self.risk.refresh(self.clearing.dirty)
            candidates = self.risk.candidates(symbol, mark, self.index_price.get(symbol))
            if not candidates:
                return
            before = len(events)
            liquidation.maybe_auto_add_margin(self.clearing, symbol, seq, ts_ms, events,
                                              candidates)
            takeover.maybe_liquidate(self.liquidation, symbol, seq, ts_ms, events, candidates)
            # A candidate that survived was filed around older marks (a budget band it left,
            # or a trigger it crossed without breaching); refile it around the new ones.
            self.clearing.dirty.update(candidates)
            if not any(type(e) is Liquidated for e in events[before:]) and not stops.busy():
                return

    def _sweep_traded(self, events: list[Event], start: int, seq: int, ts_ms: int) -> None:
        """Liquidate at the current mark what this command's fills breached (#13 B1).

        The book is not the mark: a fill far from it (a taker's, or a maker's resting order
        met after the mark moved) can open or grow an isolated position already at or below
        its maintenance margin, which must not sit there until the next mark. Only the side
        a print is worse than the mark for can be breached by it (lots bought at or under
        the mark bring their IM and no loss), and only in isolated mode (a cross account's
        orders already count their loss at the mark); the sweep runs only when such a
        position is past its trigger, so most fills cost two comparisons.
        """
        if not self.mark_price:  # no mark yet: nothing is valued at one, nothing breached
            return
        accounts = self.clearing.accounts
        breached: set[str] | None = None  # built at the first breach: most have none
        # By index, not over a slice (a copy of the command's events). A trade's fields in
        # one `astuple` (`TRADE_FIELDS`, held to `Trade`'s by a test): compiled, each read of
        # a msgspec Struct's field is a generic attribute lookup, and this reads five.
        for i in range(start, len(events)):
            event = events[i]
            if type(event) is not _TRADE:
                continue
            (_, _, _, symbol, price_ticks, _, taker_side, _, taker_account_id, _,
             maker_account_id, _, _) = _ASTUPLE(event)
            if breached is not None and symbol in breached:
                continue
            mark = self.mark_price.get(symbol)
            price: int = price_ticks
            if mark is None or price == mark:
                continue
            buyer_took = taker_side is _BUY
            if (price > mark) is buyer_took:  # worse for the taker
                account = accounts.get(taker_account_id)
            else:
                account = accounts.get(maker_account_id)
            if account is None or not account.model.holds_position_margin:
                continue
            if any(liquidation.is_past_liquidation(self.clearing, position, mark)
                   for idx in (0, 1, 2)
                   if (position := account.positions.get(position_key(symbol, idx)))):
                if breached is None:
                    breached = set()
                breached.add(symbol)
        if breached:  # most commands breach nothing: no list built and sorted for none
            for symbol in sorted(breached):
                self.sweep(symbol, seq, ts_ms, events)

    # -- listing --------------------------------------------------------------------------------

    def _list_instrument(self, cmd: ListInstrument, events: list[Event]) -> None:
        """List a new contract: refused if malformed, already listed, or already expired."""
        try:
            spec = spec_from_record(cmd.record)
        except ValueError as bad:
            raise Rejected(RejectCode.INVALID_INSTRUMENT, str(bad)) from bad
        if spec.symbol in self.instruments:
            raise Rejected(RejectCode.DUPLICATE_INSTRUMENT, f"{spec.symbol} is already listed")
        if spec.dated:
            if spec.delivery_time_ms <= cmd.ts_ms:
                raise Rejected(RejectCode.INVALID_INSTRUMENT,
                               f"{spec.symbol}: deliveryTime has passed")
            named = dated_symbol(spec.base_coin, spec.quote_coin, spec.settle_coin,
                                 spec.delivery_time_ms)
            if spec.symbol != named:
                raise Rejected(RejectCode.INVALID_INSTRUMENT,
                               f"{spec.symbol}: Bybit names this contract {named}")
        self._add_instrument(spec)
        events.append(InstrumentListed(cmd.seq, cmd.ts_ms, spec.symbol, spec_record(spec)))

    # -- venue parameters (issue #17) -----------------------------------------------------

    def _set_venue_params(self, cmd: SetVenueParams, events: list[Event]) -> None:
        """Put the operator's collateral table and PM parameters in force; refuse a bad record.

        The record kept (and snapshotted, and told in the event) is the parsed parameters'
        own canonical record, so equal parameters always hash alike.
        """
        # Read untyped: a command built in Python (not decoded from the journal, which checks
        # it is a dict) may carry anything, and the compiled core would raise a TypeError
        # reading the field as a dict instead of refusing it.
        record: object = getattr(cmd, "record", None)
        try:
            collateral, pm_params = venue_params_from_record(record)
        except ValueError as bad:
            raise Rejected(RejectCode.INVALID_PARAMETER, str(bad)) from bad
        self.clearing.set_params(collateral, pm_params)
        self.venue_params = venue_params_record(collateral, pm_params)
        events.append(VenueParamsSet(cmd.seq, cmd.ts_ms, self.venue_params))

    def current_venue_params(self) -> dict[str, Any]:
        """Return the parameters in force as a `SetVenueParams` record (set or default)."""
        return venue_params_record(self.clearing.collateral, self.clearing.pm_params)

    def _add_instrument(self, spec: InstrumentSpec) -> None:
        """Put a listed contract in the market (and its coin in the clearing, if new)."""
        self.instruments[spec.symbol] = spec
        self.books[spec.symbol] = OrderBook(spec.symbol)
        self.clearing.refresh_coins()
        if spec.dated:
            self.delivery.add(spec)
        self.listed.append(spec_record(spec))

    def _check_position_mode_switch(self, account_id: int, symbol: str,
                                    mode: PositionMode) -> None:
        # Waiting orders name a position index of the old mode, so they block a switch too.
        if self.stops.waiting.of(account_id, symbol):
            raise Rejected(RejectCode.POSITION_MODE_SWITCH_REFUSED,
                           "close the position and cancel orders before switching mode")
        settings.check_position_mode_switch(self.clearing, account_id, symbol, mode)

    def _switch_position_mode(self, cmd: SwitchPositionMode, events: list[Event]) -> None:
        self._check_position_mode_switch(cmd.account_id, cmd.symbol, cmd.position_mode)
        settings.switch_position_mode(self.clearing, cmd, events)

    def position_mode_refusal(self, account_id: int, symbol: str,
                              mode: PositionMode) -> RejectCode | None:
        """Return the code a `SwitchPositionMode` would be refused with now, or None.

        Changes nothing: the API checks every symbol of a coin-wide switch before any.
        """
        try:
            self._check_position_mode_switch(account_id, symbol, mode)
        except Rejected as refused:
            return refused.code
        return None

    # -- orders -----------------------------------------------------------------------------

    def _place(self, cmd: PlaceOrder, fields: tuple[Any, ...], events: list[Event]) -> None:
        # `fields` is every field of `cmd` from one `astuple`, in declaration order
        # (`PLACE_FIELDS`, which a test holds to `PlaceOrder`'s): compiled, each read of a
        # msgspec Struct's field is a generic attribute lookup (some thirty a place), where
        # `astuple` copies the slots in C. The values stay Python objects: the checks take
        # them as they are, and the order's `OrderAccepted` and its record's boxed ids are the
        # same objects, not ints boxed anew.
        (seq, ts_ms, account_id, symbol, side, order_type, qty_lots, price_ticks, time_in_force,
         reduce_only, close_on_trigger, position_idx, order_link_id, smp_type,
         trigger_price_ticks, _, _, take_profit_ticks, stop_loss_ticks, _, _, _, _, _, _,
         _) = fields
        # The listed symbol's own str object from here on: a command's symbol is an equal
        # but other object (decoded, or built by a client), and every dict keyed by symbol
        # that this order's path looks it up in (instruments, books, prices, bands, the
        # order indexes) would compare the two strings' bytes, where its own key is found by
        # identity. An unknown symbol is left as it came, for its refusal.
        spec = self.instruments.get(symbol)
        if spec is not None:
            symbol = spec.symbol
        try:
            if self.dated and symbol in self.dated:
                self.delivery.check_order(symbol, ts_ms, reduce_only or close_on_trigger)
            if take_profit_ticks or stop_loss_ticks:
                tpsl.refuse_with_reduce_only(cmd)
            if trigger_price_ticks is not None:
                self.stops.place(cmd, events)
                return
            price, qty, reduce_only = validate_order(
                self.market, self.clearing, spec, account_id, symbol, side, order_type,
                qty_lots, price_ticks, reduce_only, close_on_trigger, position_idx,
                order_link_id)
            if qty == MARGIN_REFUSED:  # returned, not raised (`MARGIN_REFUSED`): the same event
                events.append(_ORDER_REJECTED(seq, ts_ms, account_id, symbol, NO_BALANCE_CODE,
                                              None, order_link_id, NO_BALANCE_DETAIL))
                return
            attachment = None
            if take_profit_ticks is not None or stop_loss_ticks is not None:
                base = price if order_type is not _MARKET else self.reference_price(symbol)
                attachment = tpsl.attachment_for(cmd, self.instruments[symbol], reduce_only,
                                                 base)
        except Rejected as rejection:
            events.append(
                _ORDER_REJECTED(seq, ts_ms, account_id, symbol, rejection.code, None,
                                order_link_id, rejection.detail)
            )
            return
        next_id = self.next_order_id
        self.next_order_id = next_id + 1
        order_id: Any = next_id  # boxed once, for the record and the event
        tif = _IOC if order_type is _MARKET else time_in_force
        order = RestingOrder(
            order_id, account_id, symbol, side, order_type, price, qty, tif, reduce_only,
            close_on_trigger, position_idx, order_link_id, smp_type, ts_ms,
        )
        events.append(
            _ORDER_ACCEPTED(seq, ts_ms, order_id, account_id, symbol, side, order_type, price,
                            qty, tif, reduce_only, close_on_trigger, position_idx,
                            order_link_id, smp_type)
        )
        if attachment is not None:
            self.stops.attach(attachment, order_id, account_id, symbol, seq, ts_ms, events)
        self._execute(order, seq, ts_ms, events)
        if attachment is not None:
            # An order that never rested (IOC, FOK, PostOnly) is done: its TP/SL keep only
            # what its fills started.
            self.stops.parent_left(order_id)

    def _execute(self, order: RestingOrder, seq: Any, ts_ms: Any, events: list[Event]) -> None:
        """Run an accepted order through its time in force: reject, match, rest or cancel.

        `seq` and `ts_ms` (ints) are typed Any, as in `_end`: they go into the walk's events,
        and `_place` hands on its command's objects instead of having them unboxed here and
        boxed again for the settlement.
        """
        book = self.books[order.symbol]
        tif = order.time_in_force
        price = order.price_ticks
        crosses = book.crosses(order.side, price)
        if tif is _POST_ONLY:
            if crosses:
                self._end(order, CancelReason.POST_ONLY_WOULD_TAKE, seq, ts_ms, events)
                return
        elif tif is _FOK and book.fillable_lots(order) < order.leaves_lots:
            self._end(order, CancelReason.FOK_NOT_FILLABLE, seq, ts_ms, events)
            return
        stopped = False
        if crosses:
            # Match, then settle: the walk fills orders only; one pass then settles its steps.
            steps, self.next_trade_id, stopped, last_price = book.match(
                order, price, ts_ms, self.next_trade_id, self._reduce_room)
            settle_steps(steps, order, seq, ts_ms, self.clearing, self._close_maker, events)
            # The last price held read into its own int | None: compiled, comparing the
            # native int with the lookup's object would be a generic rich comparison.
            held = self.last_price.get(order.symbol)
            if last_price and (held is None or held != last_price):
                self.last_price[order.symbol] = last_price
                if order.symbol in self.bands:  # in/del: compiled primitives; pop is not
                    del self.bands[order.symbol]
            if last_price and self.stops.waiting.index.watches(order.symbol, _LAST):
                # The sweep's prints run one way, so its first and last bound them all.
                first = next(step.price_ticks for step in steps if type(step) is Fill)
                self.stops.price_moved(order.symbol, _LAST, first)
                if last_price != first:
                    self.stops.price_moved(order.symbol, _LAST, last_price)
            if order.leaves_lots == 0:
                # Nothing to forget: an order is in the open-order indexes only once it rests
                # (`_remember`), and a taker never has (an amended order's twin runs after its
                # original was forgotten).
                return
        if stopped:
            self._end(order, CancelReason.SELF_MATCH, seq, ts_ms, events)
        elif tif is _IOC or tif is _FOK:
            reason = (CancelReason.IOC_REMAINDER if order.filled_lots
                      else CancelReason.NO_IMMEDIATE_QTY)
            self._end(order, reason, seq, ts_ms, events)
        else:
            book.add(order)
            self._remember(order)

    def _lookup(self, account_id: int, symbol: str, order_id: int | None,
                link: str) -> RestingOrder | ConditionalOrder | tuple[Any, ...]:
        """Return an open or waiting order of the account on `symbol`, by id or link id.

        Or the code and detail of the refusal to answer, returned rather than raised or built
        as a `Rejected`: a cancel of an order that has just filled is common (three cancels
        in ten of the standard stream name one); a compiled core's raise records a traceback
        entry per frame it leaves, and building the exception alone (its `__init__` through
        `super()`) costs several times the lookup itself.
        """
        if symbol not in self.instruments:
            return RejectCode.UNKNOWN_SYMBOL, f"symbol invalid: {symbol}"
        if order_id is None and link:
            order_id = linked_order_id(self.by_link, account_id, link)
        if order_id is None and not link:
            return RejectCode.INVALID_PARAMETER, "orderId or orderLinkId is required"
        order: RestingOrder | ConditionalOrder | None = None
        # The id as the object it came in (typed Any): narrowed to an int, compiled, it would be
        # unboxed and boxed anew for each dict it is looked up in.
        key: Any = order_id
        if key is not None:
            order = self.open_orders.get(key) or self.stops.waiting.orders.get(key)
        if order is None or order.account_id != account_id or order.symbol != symbol:
            return _ORDER_NOT_FOUND
        return order

    def _amend(self, cmd: AmendOrder, events: list[Event]) -> None:
        try:
            found = self._lookup(cmd.account_id, cmd.symbol, cmd.order_id, cmd.order_link_id)
            if isinstance(found, tuple):
                raise Rejected(found[0], found[1])
            if isinstance(found, ConditionalOrder):
                self.stops.amend(found, cmd, events)
                return
            order = found
            if cmd.trigger_price_ticks is not None or cmd.trigger_by is not None:
                raise Rejected(RejectCode.INVALID_PARAMETER,
                               "params error: not a conditional order")
            spec = self.instruments[cmd.symbol]
            new_qty = order.qty_lots if cmd.qty_lots is None else cmd.qty_lots
            new_price = order.price_ticks if cmd.price_ticks is None else cmd.price_ticks
            if self.dated and cmd.symbol in self.dated:
                # In a close-only window an opening order may shrink or move, not grow.
                self.delivery.check_order(cmd.symbol, cmd.ts_ms,
                                          order.reduce_only or new_qty <= order.qty_lots)
            if cmd.qty_lots is not None:
                if cmd.qty_lots <= order.filled_lots:
                    raise Rejected(RejectCode.AMEND_QTY_NOT_ABOVE_FILLED,
                                   "The modified contract quantity cannot be less than or equal "
                                   "to the filled quantity.")
                check_qty(spec, cmd.qty_lots, False)
            if cmd.price_ticks is not None:
                new_price = checked_limit_price(self.market, spec, order.side, cmd.price_ticks)
            attached = self.stops.waiting.attachments.get(order.order_id)
            new_attached = attached
            if tpsl.changes_tpsl(cmd):
                new_attached = tpsl.amended_attachment(
                    cmd, attached, order.order_id, order.side, order.position_idx,
                    order.reduce_only, spec, new_price)
            retpsl = not tpsl.same_attachment(attached, new_attached)
            if new_qty == order.qty_lots and new_price == order.price_ticks and not retpsl:
                raise Rejected(RejectCode.NOTHING_TO_AMEND, "order not modified")
            if order.reduce_only and new_qty > order.qty_lots:
                self._check_reduce_only_room(order, new_qty - order.filled_lots)
            check_min_notional(spec, new_price, new_qty, order.reduce_only)
            self.clearing.check_amend(order, new_price, new_qty - order.filled_lots)
        except Rejected as rejection:
            events.append(
                OrderRejected(cmd.seq, cmd.ts_ms, cmd.account_id, cmd.symbol, rejection.code,
                              cmd.order_id, cmd.order_link_id, rejection.detail)
            )
            return
        if retpsl:
            self.stops.replace_attachment(order, new_attached, cmd.seq, cmd.ts_ms, events)
            if new_qty == order.qty_lots and new_price == order.price_ticks:
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

    def _check_reduce_only_room(self, order: RestingOrder, leaves_lots: int) -> None:
        # A reduce-only order may grow only into room its position still has.
        others = sum(o.leaves_lots for o in closing.resting_reduce_only(
            self.clearing, order.account_id, order.symbol, order.position_idx, order.side)
            if o is not order)
        room = closing.closable_lots(self.clearing, order.account_id, order.symbol,
                                     order.position_idx, order.side) - others
        if leaves_lots > room:
            raise Rejected(RejectCode.REDUCE_ONLY_NOT_SATISFIED, "Reduce-only rule not satisfied")

    def _cancel(self, fields: tuple[Any, ...], events: list[Event]) -> None:
        # A `CancelOrder`'s every field from one `astuple` (`CANCEL_FIELDS`; see `_place`).
        seq, ts_ms, account_id, symbol, order_id, link = fields
        order = self._lookup(account_id, symbol, order_id, link)
        if isinstance(order, tuple):
            events.append(
                _ORDER_REJECTED(seq, ts_ms, account_id, symbol, order[0], order_id, link,
                                order[1])
            )
            return
        if isinstance(order, ConditionalOrder):
            self.stops.cancel(order, seq, ts_ms, events)
        else:
            self._cancel_resting(order, _BY_USER, seq, ts_ms, events)

    def _cancel_all(self, cmd: CancelAllOrders, events: list[Event]) -> None:
        if cmd.symbol not in self.instruments:
            events.append(
                OrderRejected(cmd.seq, cmd.ts_ms, cmd.account_id, cmd.symbol,
                              RejectCode.UNKNOWN_SYMBOL, None, "", f"symbol invalid: {cmd.symbol}")
            )
            return
        # Orders in the book first, then waiting ones, each in the order they were placed.
        if cmd.order_filter in (OrderFilter.ALL, OrderFilter.ORDER):
            for order in self.orders_of(cmd.account_id, cmd.symbol):
                self._cancel_resting(order, _BY_USER, cmd.seq, cmd.ts_ms, events)
        self.stops.cancel_all(cmd.account_id, cmd.symbol, cmd.order_filter, cmd.seq,
                              cmd.ts_ms, events)

    def _cancel_resting(
        self, order: RestingOrder, reason: CancelReason, seq: Any, ts_ms: Any, events: list[Event]
    ) -> None:
        self.books[order.symbol].side(order.side).remove(order)
        self._end(order, reason, seq, ts_ms, events)
        self._forget(order)  # a resting order is always in the open-order indexes

    def _end(
        self, order: RestingOrder, reason: CancelReason, seq: Any, ts_ms: Any, events: list[Event]
    ) -> None:
        """Cancel what is left of `order`, out of the book or never in it.

        Not forgotten here: a taker that never rested is in no index (`_execute`), and
        `_cancel_resting` forgets the orders it takes out of the book.

        `seq` and `ts_ms` (ints) are typed Any: they only go into the event and the record,
        and a caller holding them boxed (a user's cancel, from its command) hands them on
        instead of having them boxed again.
        """
        order.status = advance(_AFTER_CANCEL, order.status, _CANCEL)
        order.updated_ts_ms = ts_ms
        events.append(
            _ORDER_CANCELLED(seq, ts_ms, order.id_obj, order.account_obj, order.symbol,
                             order.leaves_lots, reason)
        )

    # -- the open-order indexes -------------------------------------------------------------
    # Keyed by the order's boxed ids (`RestingOrder.id_obj`, `account_obj`): no int boxed per
    # use, and the id indexes find the very key object they hold.

    def _remember(self, order: RestingOrder) -> None:
        self.clearing.order_rested(order)
        order_id = order.id_obj
        account_id = order.account_obj
        self.open_orders[order_id] = order
        if order.order_link_id:
            index_link(self.by_link, account_id, order.order_link_id, order_id)
        by_symbol = self.orders_by_account.get(account_id)
        if by_symbol is None:
            by_symbol = self.orders_by_account[account_id] = {}
        mine = by_symbol.get(order.symbol)
        if mine is None:
            mine = by_symbol[order.symbol] = {}
        mine[order_id] = order

    def _forget(self, order: RestingOrder) -> None:
        self.clearing.order_left(order)
        order_id = order.id_obj
        account_id = order.account_obj
        if self.stops.waiting.attachments:
            self.stops.parent_left(order.order_id)
        del self.open_orders[order_id]
        if order.order_link_id:
            unindex_link(self.by_link, account_id, order.order_link_id)
        by_symbol = self.orders_by_account[account_id]
        mine = by_symbol[order.symbol]
        del mine[order_id]
        if not mine:
            del by_symbol[order.symbol]
            if not by_symbol:
                del self.orders_by_account[account_id]

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
            "waiting": self.stops.waiting.to_snapshot(),
            "adl_pool": self.adl_pool.to_snapshot(),
            # Only where there is something to keep, so a perpetuals-only state hashes as
            # before dated futures and listings existed.
            **({"listed": list(self.listed)} if self.listed else {}),
            **({"delivery": self.delivery.to_snapshot()} if self.dated else {}),
            **({"venue_params": self.venue_params} if self.venue_params is not None else {}),
        }

    @classmethod
    def from_snapshot(
        cls, instruments: Iterable[InstrumentSpec], snapshot: dict[str, Any],
        collateral: CollateralTable | None = None,
    ) -> Engine:
        """Rebuild an engine from `to_snapshot`'s data, the same instruments and collateral."""
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported snapshot version {snapshot.get('version')}")
        engine = cls(instruments, collateral)
        if "venue_params" in snapshot:  # before the accounts: their pools follow the table
            collateral, pm_params = venue_params_from_record(snapshot["venue_params"])
            engine.clearing.set_params(collateral, pm_params)
            engine.venue_params = venue_params_record(collateral, pm_params)
        for record in snapshot.get("listed", ()):
            engine._add_instrument(spec_from_record(record))
        if sorted(engine.instruments) != snapshot["symbols"]:
            raise ValueError("snapshot was taken with other instruments")
        engine.last_seq = snapshot["last_seq"]
        engine.next_order_id = snapshot["next_order_id"]
        engine.next_trade_id = snapshot["next_trade_id"]
        engine.last_ts_ms = snapshot["last_ts_ms"]
        engine.interest_due_ms = next_interest_ms(engine.last_ts_ms)
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
        engine.stops.waiting.restore(snapshot["waiting"])
        if "adl_pool" in snapshot:  # absent from snapshots taken before #13 B8
            engine.adl_pool.restore(snapshot["adl_pool"])
        engine.delivery.restore(snapshot.get("delivery", {}))
        engine.clearing.fill_watch.update(engine.stops.waiting.attachments)
        return engine

    def state_hash(self) -> str:
        """Return a SHA-256 over the canonical snapshot: equal states, equal hashes."""
        encoded = json.dumps(self.to_snapshot(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(encoded.encode()).hexdigest()

    def check_invariants(self) -> None:
        """Raise `InvariantViolation` if any book, index or account disagrees with the others."""
        invariants.check_all(self.market, self.clearing, self.stops)
