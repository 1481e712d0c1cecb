"""Agents that make the simulated market behave like one (issue #19): depth, basis, styles.

- `DepthMaker`: a ladder whose size grows away from the mid, skewed by inventory, wider and
  thinner when recent volatility rises, pulled when the index falls or rises fast (a crash)
  and put back once it has been calm for a while.
- `Arbitrageur`: trades the basis (the book against the index) with IOC limits, so the last
  price stays near the index; its inventory is bounded and unwound when the basis closes.
- `SignalTrader`: a trend follower or a mean reverter on the index's move over a lookback,
  with a stop-loss, a take-profit and a holding limit.

Like `perpx.sim.agents`, every decision is a function of what the agent saw and its own
seeded generator; amounts in settings are decimal strings converted with `perpx.convert`.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Literal

from perpx.convert import to_atoms, to_lots, to_rate
from perpx.core.commands import (
    AmendOrder,
    CancelAllOrders,
    Command,
    Deposit,
    PlaceOrder,
)
from perpx.core.enums import OrderType, Side, SmpType, TimeInForce
from perpx.core.numbers import RATE_ONE
from perpx.sim.agents import UNSTAMPED, MarketView, _leverage_commands, _ticks_of_rate


class IndexWindow:
    """The index seen over the last `window_ms`: its move and its mean absolute step."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self.points: deque[tuple[int, int]] = deque()

    def add(self, ts_ms: int, index: int) -> None:
        """Record the index at `ts_ms` and forget what fell out of the window."""
        self.points.append((ts_ms, index))
        while self.points[0][0] < ts_ms - self.window_ms:
            self.points.popleft()

    def move_rate(self) -> int:
        """Return (last − first) / first over the window, in 10**-8 (0 with one point)."""
        first, last = self.points[0][1], self.points[-1][1]
        return (last - first) * RATE_ONE // first if first else 0

    def step_rate(self) -> int:
        """Return the mean |step| / price over the window, in 10**-8 (0 with one point)."""
        if len(self.points) < 2:
            return 0
        total = 0
        previous = self.points[0][1]
        for _, price in list(self.points)[1:]:
            total += abs(price - previous) * RATE_ONE // previous
            previous = price
        return total // (len(self.points) - 1)


class DepthMaker:
    """Quotes a ladder of GTC bids and asks around the index, like one firm of a real book.

    Level i (0-based) sits at ``center ∓ index × (half_spread + i × level_step) × widen``
    with ``level_qty × (1 + i × qty_growth) / widen`` lots: size grows away from the mid.
    ``center = index × (1 + basis × basis_follow − skew)``: `basis` is a moving average
    (weight `basis_alpha` a step) of the last trade's premium over the index, so the book
    leans the way the flow has been trading it (how a perpetual comes to trade at a premium
    in a long crowd); the skew is ``inventory / skew_unit × skew_per_unit`` within
    ±`max_skew` (a long maker lowers its quotes to sell). `widen` is 1 while the
    index's mean step over `vol_window_ms` is at most `calm_step`, and grows in proportion
    above it (capped at `max_widen`): wider and thinner when volatility rises. When the
    index moves more than `pull_move` within `vol_window_ms` (0: never), the maker cancels
    its quotes and stays out for `pull_ms`, then comes back. It requotes when the center or
    the width moved by `requote` or a level was filled.
    """

    def __init__(self, account_id: int, symbol: str, *, deposit: str = "5000000",
                 levels: int = 10, level_qty: str = "0.5", qty_growth: str = "0.5",
                 half_spread: str = "0.00005", level_step: str = "0.0001",
                 skew_unit: str = "1", skew_per_unit: str = "0.0001",
                 max_skew: str = "0.002", leverage: int = 10, vol_window_ms: int = 10 * 60_000,
                 calm_step: str = "0.0006", max_widen: str = "4", pull_move: str = "0",
                 pull_ms: int = 15 * 60_000, requote: str = "0.00002",
                 basis_follow: str = "0", basis_alpha: str = "0.1") -> None:
        if levels <= 0:
            raise ValueError("DepthMaker: at least one level")
        self.account_id = account_id
        self.symbol = symbol
        self.deposit = deposit
        self.levels = levels
        self.level_qty = level_qty
        self.qty_growth_rate = to_rate(qty_growth)
        self.half_spread_rate = to_rate(half_spread)
        self.level_step_rate = to_rate(level_step)
        self.skew_unit = skew_unit
        self.skew_per_unit_rate = to_rate(skew_per_unit)
        self.max_skew_rate = to_rate(max_skew)
        self.leverage = leverage
        self.window = IndexWindow(vol_window_ms)
        self.calm_step_rate = max(1, to_rate(calm_step))
        self.max_widen_rate = to_rate(max_widen)
        self.pull_move_rate = to_rate(pull_move)
        self.pull_ms = pull_ms
        self.requote_rate = to_rate(requote)
        self.basis_follow_rate = to_rate(basis_follow)
        self.basis_alpha_rate = to_rate(basis_alpha)
        self.basis_rate = 0  # moving average of (last − index) / index, 10**-8
        self.level_lots: list[int] = []  # set at setup, from the instrument
        self.skew_unit_lots = 1
        self.pulled_until_ms: int | None = None
        self._quoted: tuple[int, int] | None = None  # (center, widen) last quoted

    def setup(self, view: MarketView) -> Iterator[Command]:
        """Fund the account and set its leverage (cross margin, one-way)."""
        spec = view.instrument(self.symbol)
        base = to_lots(spec, self.level_qty)
        self.level_lots = [max(spec.min_order_qty_lots,
                               base * (RATE_ONE + i * self.qty_growth_rate) // RATE_ONE)
                           for i in range(self.levels)]
        self.skew_unit_lots = max(1, to_lots(spec, self.skew_unit))
        yield Deposit(UNSTAMPED, UNSTAMPED, self.account_id, spec.settle_coin,
                      to_atoms(self.deposit))
        yield from _leverage_commands(self.account_id, self.symbol, self.leverage)

    def widen_rate(self) -> int:
        """Return the spread multiplier in 10**-8: 1 when calm, up to `max_widen`."""
        step = self.window.step_rate()
        return max(RATE_ONE, min(self.max_widen_rate, step * RATE_ONE // self.calm_step_rate))

    def skew_rate(self, view: MarketView) -> int:
        """Return the inventory skew in 10**-8: positive when long (quotes move down)."""
        position = view.position(self.account_id, self.symbol, 0)
        size = position.size_lots if position is not None else 0
        skew = size * self.skew_per_unit_rate // self.skew_unit_lots
        return max(-self.max_skew_rate, min(self.max_skew_rate, skew))

    def link_id(self, side: Side, level: int) -> str:
        """Return the order link id of one ladder level (stable, so refreshes find it)."""
        return f"dm{self.account_id}-{'b' if side is Side.BUY else 'a'}{level}"

    def center_ticks(self, view: MarketView, index: int) -> int:
        """Return the ladder's center: the index moved by the followed basis and the skew."""
        shift = self.basis_rate * self.basis_follow_rate // RATE_ONE - self.skew_rate(view)
        return index + _ticks_of_rate(index, shift)

    def observe_basis(self, view: MarketView, index: int) -> None:
        """Fold the last trade's basis into the moving average the center follows."""
        last = view.last_ticks(self.symbol)
        if last is None or not self.basis_follow_rate:
            return
        basis = (last - index) * RATE_ONE // index
        self.basis_rate += (basis - self.basis_rate) * self.basis_alpha_rate // RATE_ONE

    def ladder(self, view: MarketView, index: int, widen: int) -> dict[str, tuple[Side, int, int]]:
        """Return the wanted quotes by link id: (side, price in ticks, lots)."""
        spec = view.instrument(self.symbol)
        center = self.center_ticks(view, index)
        wanted: dict[str, tuple[Side, int, int]] = {}
        for level, lots in enumerate(self.level_lots):
            rate = (self.half_spread_rate + level * self.level_step_rate) * widen // RATE_ONE
            offset = max(_ticks_of_rate(index, rate), level + 1)
            thinner = max(spec.min_order_qty_lots, lots * RATE_ONE // widen)
            wanted[self.link_id(Side.BUY, level)] = (
                Side.BUY, max(spec.min_price_ticks, center - offset), thinner)
            wanted[self.link_id(Side.SELL, level)] = (
                Side.SELL, min(spec.max_price_ticks, center + offset), thinner)
        return wanted

    def act(self, view: MarketView, ts_ms: int) -> Iterator[Command]:
        """Pull in a crash, come back after it, else refresh the ladder when it went stale."""
        index = view.index_ticks(self.symbol)
        if index is None or not view.trading(self.symbol):
            return
        self.window.add(ts_ms, index)
        resting = {o.order_link_id: o for o in view.open_orders(self.account_id, self.symbol)}
        if self.pull_move_rate and abs(self.window.move_rate()) >= self.pull_move_rate:
            self.pulled_until_ms = ts_ms + self.pull_ms
        if self.pulled_until_ms is not None:
            if ts_ms < self.pulled_until_ms:
                if resting:
                    yield CancelAllOrders(UNSTAMPED, UNSTAMPED, self.account_id, self.symbol)
                self._quoted = None
                return
            self.pulled_until_ms = None
        self.observe_basis(view, index)
        widen = self.widen_rate()
        wanted = self.ladder(view, index, widen)
        center = self.center_ticks(view, index)
        tolerance = max(1, _ticks_of_rate(index, self.requote_rate))
        whole = all(link in resting and resting[link].leaves_lots == lots
                    for link, (_, _, lots) in wanted.items())
        moved = (self._quoted is None or abs(center - self._quoted[0]) >= tolerance
                 or widen != self._quoted[1])
        if whole and not moved:
            return
        rising = self._quoted is None or center >= self._quoted[0]
        self._quoted = (center, widen)
        # Move the side away from the new center first, so the ladder never crosses itself.
        first, second = (Side.SELL, Side.BUY) if rising else (Side.BUY, Side.SELL)
        for side in (first, second):
            for level in range(self.levels):
                link = self.link_id(side, level)
                _, price, lots = wanted[link]
                order = resting.get(link)
                if order is None:
                    yield PlaceOrder(UNSTAMPED, UNSTAMPED, self.account_id, self.symbol, side,
                                     OrderType.LIMIT, lots, price,
                                     time_in_force=TimeInForce.GTC, order_link_id=link,
                                     smp_type=SmpType.CANCEL_TAKER)
                    continue
                qty = order.filled_lots + lots
                if order.price_ticks != price or order.qty_lots != qty:
                    yield AmendOrder(UNSTAMPED, UNSTAMPED, self.account_id, self.symbol,
                                     order.order_id, qty_lots=qty, price_ticks=price)


class Arbitrageur:
    """Trades the basis: sells the book above the index, buys it below, within limits.

    When the best bid is more than `entry` above the index it sells, an IOC limit no lower
    than ``index × (1 + entry)``, at most `clip` and never beyond `max_position` short;
    symmetrically below. While the book is back within `exit` of the index, it unwinds up to
    `clip` of its inventory with an IOC limit no worse than ``index × (1 ± exit)``, so it
    only ever trades the basis, never the direction. Deterministic: no randomness.
    """

    def __init__(self, account_id: int, symbol: str, *, deposit: str = "5000000",
                 entry: str = "0.0005", exit: str = "0.0002", clip: str = "2",
                 max_position: str = "50", leverage: int = 10) -> None:
        self.account_id = account_id
        self.symbol = symbol
        self.deposit = deposit
        self.entry_rate = to_rate(entry)
        self.exit_rate = to_rate(exit)
        self.clip = clip
        self.max_position = max_position
        self.leverage = leverage
        self.clip_lots = 1  # set at setup
        self.max_lots = 1

    def setup(self, view: MarketView) -> Iterator[Command]:
        """Fund the account and set its leverage (cross margin, one-way)."""
        spec = view.instrument(self.symbol)
        self.clip_lots = max(spec.min_order_qty_lots, to_lots(spec, self.clip))
        self.max_lots = max(self.clip_lots, to_lots(spec, self.max_position))
        yield Deposit(UNSTAMPED, UNSTAMPED, self.account_id, spec.settle_coin,
                      to_atoms(self.deposit))
        yield from _leverage_commands(self.account_id, self.symbol, self.leverage)

    def decide(self, index: int, bid: int | None, ask: int | None,
               size: int) -> tuple[Side, int, int, bool] | None:
        """Return (side, lots, limit price, reduce only) of the IOC to send, if any."""
        upper = index + _ticks_of_rate(index, self.entry_rate)
        lower = index - _ticks_of_rate(index, self.entry_rate)
        if bid is not None and bid > upper and size > -self.max_lots:
            return Side.SELL, min(self.clip_lots, self.max_lots + size), upper, False
        if ask is not None and ask < lower and size < self.max_lots:
            return Side.BUY, min(self.clip_lots, self.max_lots - size), lower, False
        band = _ticks_of_rate(index, self.exit_rate)
        if size > 0 and bid is not None and bid >= index - band:
            return Side.SELL, min(self.clip_lots, size), index - band, True
        if size < 0 and ask is not None and ask <= index + band:
            return Side.BUY, min(self.clip_lots, -size), index + band, True
        return None

    def act(self, view: MarketView, ts_ms: int) -> Iterator[Command]:
        """Send at most one IOC a step, the one `decide` picks."""
        index = view.index_ticks(self.symbol)
        if index is None or not view.trading(self.symbol):
            return
        position = view.position(self.account_id, self.symbol, 0)
        size = position.size_lots if position is not None else 0
        choice = self.decide(index, view.best_bid(self.symbol), view.best_ask(self.symbol), size)
        if choice is None:
            return
        side, lots, price, reduce = choice
        yield PlaceOrder(UNSTAMPED, UNSTAMPED, self.account_id, self.symbol, side,
                         OrderType.LIMIT, lots, max(1, price), time_in_force=TimeInForce.IOC,
                         reduce_only=reduce, smp_type=SmpType.CANCEL_TAKER)


class SignalTrader:
    """A trend follower or a mean reverter on the index's move over `lookback_ms`.

    Flat, it opens `qty` at market when the move exceeds `threshold`: in its direction
    (``style="trend"``) or against it (``"revert"``), with probability `act_probability` a
    step (so a population does not act as one). Open, it closes at market when its uPnL
    reaches −`stop_loss` or `take_profit` × margin, after `max_hold_ms`, or when the signal
    turns against the position.
    """

    def __init__(self, account_id: int, symbol: str, *, seed: int,
                 style: Literal["trend", "revert"] = "trend", deposit: str = "100000",
                 leverage: int = 5, qty: str = "0.5", lookback_ms: int = 30 * 60_000,
                 threshold: str = "0.003", act_probability: float = 0.2,
                 stop_loss: float = 0.3, take_profit: float = 0.6,
                 max_hold_ms: int = 4 * 3_600_000) -> None:
        if style not in ("trend", "revert"):
            raise ValueError(f"SignalTrader: style trend or revert, not {style!r}")
        self.account_id = account_id
        self.symbol = symbol
        self.rng = random.Random(seed)
        self.style = style
        self.deposit = deposit
        self.leverage = leverage
        self.qty = qty
        self.window = IndexWindow(lookback_ms)
        self.threshold_rate = to_rate(threshold)
        self.act_probability = act_probability
        self.stop_loss = stop_loss
        self.take_profit = take_profit
        self.max_hold_ms = max_hold_ms
        self.qty_lots = 1
        self._opened_ms: int | None = None

    def setup(self, view: MarketView) -> Iterator[Command]:
        """Fund the account and set its leverage (cross margin, one-way)."""
        spec = view.instrument(self.symbol)
        self.qty_lots = max(spec.min_order_qty_lots, to_lots(spec, self.qty))
        yield Deposit(UNSTAMPED, UNSTAMPED, self.account_id, spec.settle_coin,
                      to_atoms(self.deposit))
        yield from _leverage_commands(self.account_id, self.symbol, self.leverage)

    def signal(self) -> int:
        """Return +1 (want long), −1 (want short) or 0 from the move over the lookback."""
        move = self.window.move_rate()
        if abs(move) < self.threshold_rate:
            return 0
        direction = 1 if move > 0 else -1
        return direction if self.style == "trend" else -direction

    def act(self, view: MarketView, ts_ms: int) -> Iterator[Command]:
        """Close on a rule or a reversed signal; else maybe open along the signal."""
        index = view.index_ticks(self.symbol)
        if index is None or not view.trading(self.symbol):
            return
        self.window.add(ts_ms, index)
        signal = self.signal()
        state = view.position_state(self.account_id, self.symbol, 0)
        if state is not None:
            opened = self._opened_ms if self._opened_ms is not None else ts_ms
            self._opened_ms = opened
            margin = max(1, state.margin_atoms)
            held = 1 if state.size_lots > 0 else -1
            if (state.upnl_atoms <= -self.stop_loss * margin
                    or state.upnl_atoms >= self.take_profit * margin
                    or ts_ms - opened >= self.max_hold_ms or signal == -held):
                yield PlaceOrder(UNSTAMPED, UNSTAMPED, self.account_id, self.symbol,
                                 Side.SELL if held > 0 else Side.BUY, OrderType.MARKET,
                                 abs(state.size_lots), reduce_only=True)
            return
        self._opened_ms = None
        if signal and self.rng.random() < self.act_probability:
            yield PlaceOrder(UNSTAMPED, UNSTAMPED, self.account_id, self.symbol,
                             Side.BUY if signal > 0 else Side.SELL, OrderType.MARKET,
                             self.qty_lots)


def weighted_choice(rng: random.Random, weights: Sequence[tuple[int, float]]) -> int:
    """Return a value drawn from (value, weight) pairs with `rng` (weights need not sum to 1)."""
    total = sum(weight for _, weight in weights)
    point = rng.random() * total
    for value, weight in weights:
        point -= weight
        if point < 0:
            return value
    return weights[-1][0]
