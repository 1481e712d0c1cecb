"""Dated futures: their lifecycle, the delivery price and the delivery (next-mechanics §2).

Time enters only through commands, as for funding: before any command stamped at or after a
future's `deliveryTime` T is applied, the future delivers (so an order stamped at T already
finds it Closed). Delivery, in one step (§2.2 item 3, §2.5):

1. status `Delivering`; every open order, conditional order and TP/SL of the symbol is
   cancelled (`CancelBySettle`, §7 N4);
2. the delivery price DP: the mean of the index samples taken in [T - 30 min, T), one per
   second (the index standing at the first `IndexPrice` or `Tick` of that second), 8 dp
   half-up (§2.4, §7 N3); a second without a command has no sample, and the mean is over the
   samples taken (§2.4);
3. every position settles at DP: P&L ``q(DP - EP)·side`` and the delivery fee
   ``q·DP·deliveryFeeRate`` (`Clearing.settle_delivery`); an account left below zero equity
   is made whole by the insurance fund, as after a takeover;
4. status `Closed`: new orders are refused (110074).

In the window the running delivery average is a second trigger (§2.2, §7 N20): after each
sample, what it breaches is liquidated as if it were the mark (`_double_trigger`).

A close-only window before T (`closeOnlyBeforeDeliverySec`, §7 N5, none by default)
refuses orders that are not reduce-only. The core samples the index itself, so a replay of
the journal gives the same DP. Only `delivery_price_fraction` depends on the contract type
through nothing but the tick, so inverse futures can reuse all of it once their maths exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perpx.core.codes import RejectCode, Rejected
from perpx.core.enums import CancelReason, InstrumentStatus, OrderFilter
from perpx.core.events import Event, FuturesDelivered, InstrumentStatusChanged
from perpx.core.numbers import div_round
from perpx.core.risk import takeover

if TYPE_CHECKING:
    from perpx.core.account.clearing import Clearing
    from perpx.core.instruments import InstrumentSpec
    from perpx.core.market import Market
    from perpx.core.orders.stops import Stops
    from perpx.core.ports import MarkReactions, OrderRunner
    from perpx.core.risk.takeover import LiquidationDesk

SECOND_MS = 1_000
_TRADING = InstrumentStatus.TRADING
_DELIVERING = InstrumentStatus.DELIVERING
_CLOSED = InstrumentStatus.CLOSED
_BY_SETTLE = CancelReason.BY_SETTLE


class DeliveryClock:
    """One dated future's status and the index samples of its delivery window."""

    __slots__ = ("last_second", "price_e8", "samples", "status", "total_ticks")

    def __init__(self) -> None:
        self.status = _TRADING
        self.total_ticks = 0  # the sum of the index samples taken, in ticks
        self.samples = 0
        self.last_second = -1  # the last second (ts // 1000) sampled
        self.price_e8 = 0  # the delivery price once delivered, 10**-8 of the quote coin

    def to_record(self) -> list[int]:
        """Return the clock in a fixed order, for snapshots and the state hash."""
        return [int(self.status), self.total_ticks, self.samples, self.last_second,
                self.price_e8]

    @classmethod
    def from_record(cls, record: list[int]) -> DeliveryClock:
        """Rebuild from `to_record`."""
        clock = cls()
        status, clock.total_ticks, clock.samples, clock.last_second, clock.price_e8 = record
        clock.status = InstrumentStatus(status)
        return clock


def delivery_price_e8(total_ticks: int, samples: int, tick_atoms: int) -> int:
    """Return DP = mean of the samples, in 10**-8 of the quote coin, half-up (§2.4, §7 N3).

    `tick_atoms` is the quote coin's 10**-8 units in one tick, so a price of ``t`` ticks is
    ``t * tick_atoms`` such units; the mean is exact before this one rounding.
    """
    return div_round(total_ticks * tick_atoms, samples)


class Delivery:
    """The dated futures of the market: their clocks, order gate and delivery."""

    def __init__(self, market: Market, clearing: Clearing, stops: Stops, runner: OrderRunner,
                 desk: LiquidationDesk, reactions: MarkReactions) -> None:
        self.market = market
        self.reactions = reactions
        self.clearing = clearing
        self.stops = stops
        self.runner = runner
        self.desk = desk
        self.clocks: dict[str, DeliveryClock] = {}
        self.next_due_ms: int | None = None  # the earliest delivery time still to come
        for spec in market.instruments.values():
            if spec.dated:
                self.add(spec)

    def add(self, spec: InstrumentSpec) -> None:
        """Start the clock of a dated future (at construction, or listed later)."""
        self.clocks[spec.symbol] = DeliveryClock()
        self._refresh_due()

    def _refresh_due(self) -> None:
        instruments = self.market.instruments
        self.next_due_ms = min((instruments[symbol].delivery_time_ms
                                for symbol, clock in self.clocks.items()
                                if clock.status is _TRADING), default=None)

    def status(self, symbol: str) -> InstrumentStatus:
        """Return a symbol's status (a perpetual is always Trading)."""
        clock = self.clocks.get(symbol)
        return clock.status if clock is not None else _TRADING

    # -- the order gate -----------------------------------------------------------------------

    def check_order(self, symbol: str, ts_ms: int, reduce_only: bool) -> None:
        """Refuse an order on a future that no longer trades, or opens in its close-only window."""
        clock = self.clocks[symbol]
        if clock.status is not _TRADING:
            raise Rejected(RejectCode.CONTRACT_NOT_LIVE, f"{symbol} has delivered")
        spec = self.market.instruments[symbol]
        window = spec.close_only_before_delivery_ms
        if window and not reduce_only and ts_ms >= spec.delivery_time_ms - window:
            raise Rejected(RejectCode.CLOSE_ONLY_BEFORE_DELIVERY,
                           f"{symbol} takes only reduce-only orders before delivery")

    # -- the delivery price -------------------------------------------------------------------

    def sample(self, symbol: str, ts_ms: int, index_ticks: int, seq: int,
               events: list[Event]) -> None:
        """Take the second's index sample if `ts_ms` lies in the delivery window (§2.4).

        A new sample moves the running average, the second liquidation trigger (N20).
        """
        clock = self.clocks[symbol]
        spec = self.market.instruments[symbol]
        delivery = spec.delivery_time_ms
        if clock.status is not _TRADING or not (
                delivery - spec.delivery_window_ms <= ts_ms < delivery):
            return
        second = ts_ms // SECOND_MS
        if second > clock.last_second:
            clock.last_second = second
            clock.total_ticks += index_ticks
            clock.samples += 1
            self._double_trigger(symbol, spec, clock, seq, ts_ms, events)

    def _double_trigger(self, symbol: str, spec: InstrumentSpec, clock: DeliveryClock,
                        seq: int, ts_ms: int, events: list[Event]) -> None:
        """Liquidate what the running delivery average breaches, as the mark would (N20).

        Bybit: in the last 30 minutes "liquidation triggers when either the mark price or the
        expected settlement price reaches the liquidation price" [B-FUT-SPEC]. The average,
        rounded to the nearest tick, stands in for the mark during one sweep (the liquidation
        engine reads the mark: its checks, and the price its events report), and the mark is
        put back, unchanged, after it. Where the average is the mark there is nothing more to
        check; a position the average favours is not breached by it.
        """
        market = self.market
        mark = market.mark_price.get(symbol)
        average = div_round(clock.total_ticks, clock.samples)
        if mark is None or average == mark or average <= 0:
            return
        market.mark_price[symbol] = average
        market.drop_band(symbol)
        try:
            self.reactions.sweep(symbol, seq, ts_ms, events)
        finally:
            market.mark_price[symbol] = mark
            market.drop_band(symbol)

    def predicted_price_e8(self, symbol: str) -> int | None:
        """Return the running delivery price (tickers' predictedDeliveryPrice), if sampled."""
        clock = self.clocks.get(symbol)
        if clock is None or not clock.samples:
            return None
        spec = self.market.instruments[symbol]
        return delivery_price_e8(clock.total_ticks, clock.samples, spec.tick_atoms)

    def _price_e8(self, symbol: str, spec: InstrumentSpec) -> tuple[int, int]:
        """Return (DP, samples). With no sample at all, the last index, else mark, else last.

        A future that traded always has a last price; one that never traded has no position
        to settle, and its DP is then 0 (recorded, never used).
        """
        clock = self.clocks[symbol]
        if clock.samples:
            return delivery_price_e8(clock.total_ticks, clock.samples, spec.tick_atoms), (
                clock.samples)
        market = self.market
        fallback = (market.index_price.get(symbol) or market.mark_price.get(symbol)
                    or market.last_price.get(symbol) or 0)
        return fallback * spec.tick_atoms, 0

    # -- delivery -----------------------------------------------------------------------------

    def deliver_due(self, seq: int, ts_ms: int, events: list[Event]) -> None:
        """Deliver every future whose delivery time is at or before `ts_ms`, in time order."""
        instruments = self.market.instruments
        while self.next_due_ms is not None and self.next_due_ms <= ts_ms:
            due = self.next_due_ms
            for symbol in sorted(self.clocks):
                clock = self.clocks[symbol]
                if clock.status is _TRADING and instruments[symbol].delivery_time_ms == due:
                    self._deliver(instruments[symbol], clock, seq, ts_ms, events)
            self._refresh_due()

    def _deliver(self, spec: InstrumentSpec, clock: DeliveryClock, seq: int, ts_ms: int,
                 events: list[Event]) -> None:
        symbol = spec.symbol
        clock.status = _DELIVERING
        events.append(InstrumentStatusChanged(seq, ts_ms, symbol, _DELIVERING))
        self._cancel_orders(symbol, seq, ts_ms, events)
        price_e8, samples = self._price_e8(symbol, spec)
        clock.price_e8 = price_e8
        settled = self.clearing.settle_delivery(spec, price_e8, seq, ts_ms, events)
        coin = spec.settle_coin
        accounts = self.clearing.accounts
        for account_id in settled.accounts:
            takeover.make_whole(self.desk, accounts[account_id], coin, seq, ts_ms, events)
        events.append(FuturesDelivered(seq, ts_ms, symbol, spec.delivery_time_ms, price_e8,
                                       samples, settled.positions, settled.fee_atoms,
                                       settled.remainder_atoms))
        clock.status = _CLOSED
        events.append(InstrumentStatusChanged(seq, ts_ms, symbol, _CLOSED))

    def _cancel_orders(self, symbol: str, seq: int, ts_ms: int, events: list[Event]) -> None:
        """Cancel every resting and waiting order of `symbol`, by account then order id."""
        market = self.market
        accounts = sorted({account for account, by_symbol in market.orders_by_account.items()
                           if symbol in by_symbol}
                          | {order.account_id for order in self.stops.waiting.orders.values()
                             if order.symbol == symbol})
        for account_id in accounts:
            for order in market.orders_of(account_id, symbol):
                self.runner.cancel_order(order, _BY_SETTLE, seq, ts_ms, events)
            self.stops.cancel_all(account_id, symbol, OrderFilter.ALL, seq, ts_ms, events,
                                  _BY_SETTLE)

    # -- snapshots ----------------------------------------------------------------------------

    def to_snapshot(self) -> dict[str, Any]:
        """Return the clocks as plain data."""
        return {symbol: self.clocks[symbol].to_record() for symbol in sorted(self.clocks)}

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Load `to_snapshot`'s data."""
        for symbol, record in snapshot.items():
            self.clocks[symbol] = DeliveryClock.from_record(record)
        self._refresh_due()
