"""Index, mark and funding over time: what happens as index prices and ticks arrive.

Time enters only through commands. Before any command stamped at or after a symbol's funding
timestamp is applied, that funding is settled (so a position opened by a command stamped
exactly at the timestamp does not pay, and one closed by it does). A `Tick` samples the
basis once a second and the premium index once a minute, and refreshes the marks.

A dated future has no funding clock (next-mechanics §2.3): it samples its basis rate once a
second and its mark is ``Index × (1 + basisRate)``; each index it takes is also a sample of
its delivery price (`perpx.core.delivery`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perpx.core.codes import RejectCode, Rejected
from perpx.core.commands import IndexPrice, SetFundingInterval, Tick
from perpx.core.enums import InstrumentStatus, TriggerBy
from perpx.core.events import (
    Event,
    FundingIntervalSet,
    IndexPriceUpdated,
    MarkPriceUpdated,
    PremiumIndexSampled,
)
from perpx.core.numbers import div_floor
from perpx.core.prices.funding import (
    MINUTE_MS,
    FundingState,
    funding_rate,
    impact_price,
    impact_qty_lots,
    next_funding_after,
    premium_index_rate,
)
from perpx.core.prices.marks import (
    BasisRateWindow,
    BasisWindow,
    futures_mark_price,
    mark_price,
)

if TYPE_CHECKING:
    from perpx.core.account.clearing import Clearing
    from perpx.core.delivery import Delivery
    from perpx.core.market import Market
    from perpx.core.orders.stops import Stops
    from perpx.core.ports import MarkReactions


class Pricing:
    """Funding clocks and basis windows of every symbol."""

    def __init__(self, market: Market, clearing: Clearing, stops: Stops,
                 reactions: MarkReactions, delivery: Delivery) -> None:
        self.market = market
        self.delivery = delivery
        # Dated futures' basis-rate windows (they have no funding clock), by symbol.
        self.basis_rate: dict[str, BasisRateWindow] = {}
        self.clearing = clearing
        self.stops = stops
        # What follows a new mark, or funding at an unchanged one: the engine's reactions.
        self.reactions = reactions
        self.funding: dict[str, FundingState] = {}
        self.basis: dict[str, BasisWindow] = {}
        self.next_due_ms: int | None = None  # the earliest funding timestamp of any symbol

    def _state(self, symbol: str, ts_ms: int) -> FundingState:
        state = self.funding.get(symbol)
        if state is None:
            spec = self.market.instruments[symbol]
            state = FundingState(spec.funding_interval_min,
                                 next_funding_after(ts_ms, spec.funding_interval_min))
            # Before any premium sample the running rate is the interest alone.
            state.predicted_rate = funding_rate(spec, [], state.interval_min)
            self.funding[symbol] = state
            self.basis[symbol] = BasisWindow(spec.mark_basis_window_ms)
            self._refresh_due()
        return state

    def _refresh_due(self) -> None:
        self.next_due_ms = min((s.next_funding_ms for s in self.funding.values()), default=None)

    # -- commands ---------------------------------------------------------------------------

    def index_price(self, cmd: IndexPrice, events: list[Event]) -> None:
        """Take a new index price and refresh the symbol's mark."""
        if cmd.symbol not in self.market.instruments:
            raise Rejected(RejectCode.UNKNOWN_SYMBOL, f"symbol invalid: {cmd.symbol}")
        if cmd.price_ticks <= 0:
            raise Rejected(RejectCode.INVALID_PRICE, "index price must be positive")
        spec = self.market.instruments[cmd.symbol]
        if spec.dated:
            if cmd.symbol not in self.basis_rate:
                self.basis_rate[cmd.symbol] = BasisRateWindow(spec.mark_basis_window_ms)
        else:
            self._state(cmd.symbol, cmd.ts_ms)
        self.market.index_price[cmd.symbol] = cmd.price_ticks
        self.market.drop_band(cmd.symbol)
        events.append(IndexPriceUpdated(cmd.seq, cmd.ts_ms, cmd.symbol, cmd.price_ticks))
        self.stops.price_moved(cmd.symbol, TriggerBy.INDEX_PRICE, cmd.price_ticks)
        if spec.dated:
            moved = self._refresh_futures_mark(cmd.symbol, cmd.seq, cmd.ts_ms, events)
            self.delivery.sample(cmd.symbol, cmd.ts_ms, cmd.price_ticks, cmd.seq, events)
        else:
            moved = self._refresh_mark(cmd.symbol, cmd.seq, cmd.ts_ms, events)
        if not moved:
            self.reactions.after_index_move(cmd.symbol, cmd.seq, cmd.ts_ms, events)

    def tick(self, cmd: Tick, events: list[Event]) -> None:
        """Sample basis and premium for every indexed symbol, then refresh its mark."""
        for symbol in sorted(self.market.index_price):
            if symbol in self.basis_rate:
                self._tick_future(symbol, cmd.seq, cmd.ts_ms, events)
                continue
            state = self._state(symbol, cmd.ts_ms)
            index = self.market.index_price[symbol]
            book = self.market.books[symbol]
            self.basis[symbol].maybe_sample(cmd.ts_ms, book, index)
            minute = div_floor(cmd.ts_ms, MINUTE_MS)
            if minute > state.last_minute:
                state.last_minute = minute
                spec = self.market.instruments[symbol]
                qty = impact_qty_lots(spec, index)
                premium = premium_index_rate(index, impact_price(book.bids, qty),
                                             impact_price(book.asks, qty))
                state.samples.append(premium)
                state.predicted_rate = funding_rate(spec, state.samples, state.interval_min)
                events.append(PremiumIndexSampled(cmd.seq, cmd.ts_ms, symbol, premium,
                                                  state.predicted_rate, state.next_funding_ms))
            self._refresh_mark(symbol, cmd.seq, cmd.ts_ms, events)

    def _tick_future(self, symbol: str, seq: int, ts_ms: int, events: list[Event]) -> None:
        """Sample a dated future's delivery price and basis rate, then refresh its mark.

        A future that has delivered samples nothing and keeps its last mark.
        """
        if self.delivery.status(symbol) is not InstrumentStatus.TRADING:
            return
        index = self.market.index_price[symbol]
        spec = self.market.instruments[symbol]
        self.basis_rate[symbol].maybe_sample(ts_ms, self.market.books[symbol], index,
                                             impact_qty_lots(spec, index))
        self._refresh_futures_mark(symbol, seq, ts_ms, events)
        self.delivery.sample(symbol, ts_ms, index, seq, events)

    def set_funding_interval(self, cmd: SetFundingInterval, events: list[Event]) -> None:
        """Change the interval; the next timestamp is the first of the new grid after now.

        The premium samples of the interrupted interval are kept: they were measured and
        still say where the price stood.
        """
        if cmd.symbol not in self.market.instruments:
            raise Rejected(RejectCode.UNKNOWN_SYMBOL, f"symbol invalid: {cmd.symbol}")
        if self.market.instruments[cmd.symbol].dated:
            raise Rejected(RejectCode.INVALID_PARAMETER, "a dated future has no funding")
        if cmd.interval_min not in (60, 120, 240, 480):
            raise Rejected(RejectCode.INVALID_PARAMETER, "funding interval must be 1, 2, 4 or 8 h")
        state = self._state(cmd.symbol, cmd.ts_ms)
        state.interval_min = cmd.interval_min
        state.next_funding_ms = next_funding_after(cmd.ts_ms, cmd.interval_min)
        self._refresh_due()
        events.append(FundingIntervalSet(cmd.seq, cmd.ts_ms, cmd.symbol, cmd.interval_min,
                                         state.next_funding_ms))

    # -- funding and marks ----------------------------------------------------------------

    def settle_due(self, seq: int, ts_ms: int, events: list[Event]) -> None:
        """Settle every funding timestamp at or before `ts_ms`, in time then symbol order."""
        while self.next_due_ms is not None and self.next_due_ms <= ts_ms:
            due = self.next_due_ms
            for symbol in sorted(self.funding):
                state = self.funding[symbol]
                if state.next_funding_ms != due:
                    continue
                spec = self.market.instruments[symbol]
                rate = funding_rate(spec, state.samples, state.interval_min)
                state.last_rate = rate
                state.samples = []
                state.predicted_rate = funding_rate(spec, [], state.interval_min)
                state.next_funding_ms = due + state.interval_min * MINUTE_MS
                mark = self.market.mark_price.get(symbol, 0)
                self.clearing.settle_funding(
                    symbol, rate, mark, due, state.next_funding_ms, state.predicted_rate, seq,
                    ts_ms, events)
                if spec.session_settled:  # USDC: the session ends with the funding (§3.2)
                    self.clearing.settle_sessions(symbol, mark, due, seq, ts_ms, events)
                # Funding moved margins: liquidate at the current mark what it breached.
                self.reactions.sweep(symbol, seq, ts_ms, events)
            self._refresh_due()

    def _refresh_mark(self, symbol: str, seq: int, ts_ms: int, events: list[Event]) -> bool:
        """Recompute the mark from the index; return whether it moved (and was reacted to)."""
        state = self.funding[symbol]
        index = self.market.index_price[symbol]
        interval_ms = state.interval_min * MINUTE_MS
        until = max(0, state.next_funding_ms - ts_ms)
        mark = mark_price(index, state.predicted_rate, until, interval_ms,
                          self.basis[symbol].average_basis(),
                          self.market.last_price.get(symbol))
        if mark > 0 and mark != self.market.mark_price.get(symbol):
            self.market.mark_price[symbol] = mark
            self.market.drop_band(symbol)
            events.append(MarkPriceUpdated(seq, ts_ms, symbol, mark))
            self.reactions.after_mark_move(symbol, seq, ts_ms, events)
            return True
        return False

    def _refresh_futures_mark(self, symbol: str, seq: int, ts_ms: int,
                              events: list[Event]) -> bool:
        """Recompute a future's mark from its index; return whether it moved."""
        index = self.market.index_price[symbol]
        mark = futures_mark_price(index, self.basis_rate[symbol].average_rate())
        if mark > 0 and mark != self.market.mark_price.get(symbol):
            self.market.mark_price[symbol] = mark
            self.market.drop_band(symbol)
            events.append(MarkPriceUpdated(seq, ts_ms, symbol, mark))
            self.reactions.after_mark_move(symbol, seq, ts_ms, events)
            return True
        return False

    # -- snapshots ----------------------------------------------------------------------------

    def to_snapshot(self) -> dict[str, Any]:
        """Return funding clocks and basis windows (futures: basis-rate windows) as data."""
        snapshot: dict[str, Any] = {
            symbol: {"funding": self.funding[symbol].to_record(),
                     "basis": self.basis[symbol].to_record()}
            for symbol in sorted(self.funding)}
        for symbol in sorted(self.basis_rate):
            snapshot[symbol] = {"basis_rate": self.basis_rate[symbol].to_record()}
        return snapshot

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Load `to_snapshot`'s data."""
        for symbol, data in snapshot.items():
            window = self.market.instruments[symbol].mark_basis_window_ms
            if "basis_rate" in data:
                self.basis_rate[symbol] = BasisRateWindow.from_record(window,
                                                                      data["basis_rate"])
                continue
            self.funding[symbol] = FundingState.from_record(data["funding"])
            self.basis[symbol] = BasisWindow.from_record(window, data["basis"])
        self._refresh_due()
