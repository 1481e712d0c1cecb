"""Simulated traders: each agent reads the market through a `MarketView` and answers commands.

Agents are adapters outside the core. They decide with their own seeded `random.Random`, never
the wall clock, so a simulation is a pure function of its seeds and feed. An agent yields
*unstamped* commands (``seq = ts_ms = 0``); the runner, acting as the sequencer, stamps and
applies each one before the agent decides its next, so a later decision sees the earlier ones'
effects. Amounts in agent settings are decimal strings, converted with `perpx.convert`.

- `MarketMaker`: a funded cross-margin account quoting a ladder of GTC bids and asks
  around the index, skewed against its inventory, refreshed by amending each level in place
  or by cancel-and-replace.
- `NoiseTrader`: seeded market or limit orders of random size with a long or short bias,
  10x-50x leverage, either margin mode and either position mode; it cuts losers, takes
  profits, closes after a holding time and cancels stale limit orders.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from perpx.convert import to_atoms, to_lots, to_rate
from perpx.core import Engine
from perpx.core.account.accounts import DEFAULT_LEVERAGE
from perpx.core.account.positions import Position
from perpx.core.book.order import RestingOrder
from perpx.core.commands import (
    AmendOrder,
    CancelAllOrders,
    Command,
    Deposit,
    PlaceOrder,
    SetLeverage,
    SetMarginMode,
    SwitchPositionMode,
)
from perpx.core.enums import (
    InstrumentStatus,
    MarginMode,
    OrderType,
    PositionMode,
    Side,
    SmpType,
    TimeInForce,
)
from perpx.core.instruments import InstrumentSpec
from perpx.core.numbers import RATE_ONE

UNSTAMPED = 0  # seq and ts_ms of a command an agent builds; the runner stamps the real ones


class MarketView:
    """A read-only window on an engine: what a trader could see on the exchange."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def instrument(self, symbol: str) -> InstrumentSpec:
        """Return the contract specification of `symbol`."""
        return self._engine.instruments[symbol]

    def trading(self, symbol: str) -> bool:
        """Tell whether `symbol` takes orders (a dated future stops at its delivery)."""
        return self._engine.delivery.status(symbol) is InstrumentStatus.TRADING

    def index_ticks(self, symbol: str) -> int | None:
        """Return the last index price, if any."""
        return self._engine.index_price.get(symbol)

    def mark_ticks(self, symbol: str) -> int | None:
        """Return the mark price, if any."""
        return self._engine.mark_price.get(symbol)

    def last_ticks(self, symbol: str) -> int | None:
        """Return the last traded price, if any (Bybit's public lastPrice)."""
        return self._engine.last_price.get(symbol)

    def best_bid(self, symbol: str) -> int | None:
        """Return the best bid in ticks, if any."""
        return self._engine.books[symbol].best_bid()

    def best_ask(self, symbol: str) -> int | None:
        """Return the best ask in ticks, if any."""
        return self._engine.books[symbol].best_ask()

    def open_orders(self, account_id: int, symbol: str) -> list[RestingOrder]:
        """Return the account's open orders on `symbol`, oldest first (do not modify them)."""
        return self._engine.orders_of(account_id, symbol)

    def position(self, account_id: int, symbol: str, position_idx: int) -> Position | None:
        """Return a position (do not modify it), if the account has one."""
        account = self._engine.clearing.account(account_id)
        return account.position(symbol, position_idx) if account is not None else None

    def position_state(self, account_id: int, symbol: str,
                       position_idx: int) -> PositionState | None:
        """Return an open position's size, uPnL at the mark and margin; None when flat.

        The margin is the position's own in isolated mode, else its value at the mark over
        its leverage; with no mark yet, the entry value stands in.
        """
        position = self.position(account_id, symbol, position_idx)
        if position is None or not position.size_lots:
            return None
        spec = self._engine.instruments[symbol]
        mark = self._engine.mark_price.get(symbol)
        value = (spec.notional_atoms(mark, position.qty_lots) if mark is not None
                 else position.entry_value_atoms)
        side = Side.BUY if position.size_lots > 0 else Side.SELL
        margin = position.margin_atoms or value * RATE_ONE // position.leverage
        upnl = (spec.contract.unrealised_pnl_atoms(side, position.entry_value_atoms,
                                                   position.qty_lots, mark)
                if mark is not None else 0)
        return PositionState(position.size_lots, upnl, margin)


@dataclass(frozen=True, slots=True)
class PositionState:
    """What a trader watches on an open position, in lots and atoms."""

    size_lots: int  # long > 0, short < 0
    upnl_atoms: int
    margin_atoms: int


class Agent(Protocol):
    """A trader of the simulation, owning one account."""

    account_id: int

    def setup(self, view: MarketView) -> Iterable[Command]:
        """Yield the commands that open and configure the account (deposit, modes)."""
        ...

    def act(self, view: MarketView, ts_ms: int) -> Iterable[Command]:
        """Yield this step's commands, unstamped; each is applied before the next is asked."""
        ...


def _ticks_of_rate(price_ticks: int, rate: int) -> int:
    """Return `price × rate` in whole ticks, toward zero (a distance, not a published figure)."""
    return price_ticks * rate // RATE_ONE


def _leverage_commands(account_id: int, symbol: str, leverage: int) -> Iterator[Command]:
    if leverage * RATE_ONE != DEFAULT_LEVERAGE:
        yield SetLeverage(UNSTAMPED, UNSTAMPED, account_id, symbol, leverage * RATE_ONE,
                          leverage * RATE_ONE)


class MarketMaker:
    """Quotes `levels` bids and asks of `level_qty` around the index, in cross margin.

    Level i sits at ``center ∓ index × (half_spread + i × level_step)``, the distance in
    whole ticks (at least i + 1), with ``center = index × (1 − skew)`` and the skew
    ``inventory / level_qty × skew_per_level``, within ±`max_skew`: a long market maker
    lowers its quotes to sell, a short one raises them to buy. Quotes are GTC limits, so a
    quote moved across a stale order resting in the book takes it (the market maker keeps the
    book near the index); self-match prevention cancels the taker should the ladder ever
    meet itself. Stable order link ids let a level filled away simply be placed again.
    `refresh="amend"` moves each level with `AmendOrder`; `"replace"` cancels all and places
    the ladder again. Nothing is sent while the center moved less than `requote_ticks` and
    every level is whole.
    """

    def __init__(self, account_id: int, symbol: str, *, deposit: str = "20000000",
                 levels: int = 5, level_qty: str = "3", half_spread: str = "0.0001",
                 level_step: str = "0.0001", skew_per_level: str = "0.001",
                 max_skew: str = "0.005", leverage: int = 10,
                 refresh: Literal["amend", "replace"] = "amend",
                 requote_ticks: int = 1) -> None:
        if levels <= 0:
            raise ValueError("MarketMaker: at least one level")
        self.account_id = account_id
        self.symbol = symbol
        self.deposit = deposit
        self.levels = levels
        self.level_qty = level_qty
        self.half_spread_rate = to_rate(half_spread)
        self.level_step_rate = to_rate(level_step)
        self.skew_per_level_rate = to_rate(skew_per_level)
        self.max_skew_rate = to_rate(max_skew)
        self.leverage = leverage
        self.refresh = refresh
        self.requote_ticks = requote_ticks
        self.level_lots = 0  # set at setup, from the instrument
        self._quoted_center2: int | None = None

    def link_id(self, side: Side, level: int) -> str:
        """Return the order link id of one ladder level (stable, so refreshes find it)."""
        return f"mm{self.account_id}-{'b' if side is Side.BUY else 'a'}{level}"

    def setup(self, view: MarketView) -> Iterator[Command]:
        """Fund the account and set its leverage (cross margin, one-way: the defaults)."""
        spec = view.instrument(self.symbol)
        self.level_lots = to_lots(spec, self.level_qty)
        yield Deposit(UNSTAMPED, UNSTAMPED, self.account_id, spec.settle_coin,
                      to_atoms(self.deposit))
        yield from _leverage_commands(self.account_id, self.symbol, self.leverage)

    def skew_rate(self, view: MarketView) -> int:
        """Return the inventory skew in 10**-8: positive when long (quotes move down)."""
        position = view.position(self.account_id, self.symbol, 0)
        size = position.size_lots if position is not None else 0
        skew = size * self.skew_per_level_rate // self.level_lots
        return max(-self.max_skew_rate, min(self.max_skew_rate, skew))

    def ladder(self, view: MarketView) -> dict[str, tuple[Side, int]] | None:
        """Return the wanted quotes by link id: (side, price in ticks); None without index."""
        index = view.index_ticks(self.symbol)
        if index is None:
            return None
        spec = view.instrument(self.symbol)
        center = index - _ticks_of_rate(index, self.skew_rate(view))
        wanted: dict[str, tuple[Side, int]] = {}
        for level in range(self.levels):
            offset = _ticks_of_rate(index, self.half_spread_rate
                                    + level * self.level_step_rate)
            offset = max(offset, level + 1)  # never two levels on one tick, never at center
            bid = max(spec.min_price_ticks, center - offset)
            ask = min(spec.max_price_ticks, center + offset)
            wanted[self.link_id(Side.BUY, level)] = (Side.BUY, bid)
            wanted[self.link_id(Side.SELL, level)] = (Side.SELL, ask)
        return wanted

    def act(self, view: MarketView, ts_ms: int) -> Iterator[Command]:
        """Refresh the ladder when the center moved or a level was (partly) filled."""
        if not view.trading(self.symbol):  # delivered: nothing left to quote
            return
        wanted = self.ladder(view)
        if wanted is None:
            return
        # Twice the center (level-0 bid + ask), so it stays a whole number of ticks.
        center2 = wanted[self.link_id(Side.BUY, 0)][1] + wanted[self.link_id(Side.SELL, 0)][1]
        resting = {o.order_link_id: o for o in view.open_orders(self.account_id, self.symbol)}
        whole = all(link in resting and resting[link].leaves_lots == self.level_lots
                    for link in wanted)
        moved = (self._quoted_center2 is None
                 or abs(center2 - self._quoted_center2) >= 2 * self.requote_ticks)
        if whole and not moved:
            return
        rising = self._quoted_center2 is None or center2 >= self._quoted_center2
        self._quoted_center2 = center2
        if self.refresh == "replace":
            if resting:
                yield CancelAllOrders(UNSTAMPED, UNSTAMPED, self.account_id, self.symbol)
            for link, (side, price) in wanted.items():
                yield self._quote(link, side, price)
            return
        # Move the side away from the new center first, so the ladder never crosses itself.
        first, second = (Side.SELL, Side.BUY) if rising else (Side.BUY, Side.SELL)
        for side in (first, second):
            for level in range(self.levels):
                link = self.link_id(side, level)
                price = wanted[link][1]
                order = resting.get(link)
                if order is None:
                    yield self._quote(link, side, price)
                    continue
                qty = order.filled_lots + self.level_lots
                if order.price_ticks != price or order.qty_lots != qty:
                    yield AmendOrder(UNSTAMPED, UNSTAMPED, self.account_id, self.symbol,
                                     order.order_id, qty_lots=qty, price_ticks=price)

    def _quote(self, link: str, side: Side, price_ticks: int) -> PlaceOrder:
        return PlaceOrder(UNSTAMPED, UNSTAMPED, self.account_id, self.symbol, side,
                          OrderType.LIMIT, self.level_lots, price_ticks,
                          time_in_force=TimeInForce.GTC, order_link_id=link,
                          smp_type=SmpType.CANCEL_TAKER)


class NoiseTrader:
    """Trades at random with a bias; manages its positions with a stop, a target and a timer.

    Each step, with probability `act_probability`, it opens: a buy with probability
    `long_bias`, of a uniform random size from the minimum to `max_qty`, at market with
    probability `market_share`, else a GTC limit within ±`limit_offset` of the index (mostly
    on its own side of it, sometimes marketable). With a `trend_weight`, the chance of a buy
    rises (falls) by that much while the index is above (below) where it stood
    `trend_lookback_ms` ago: crowds chase moves, which is what drives funding. A position is
    closed at market, reduce-only, when its uPnL falls to −`stop_loss` × its margin, reaches
    `take_profit` × its margin, or after `max_hold_ms`; limit orders older than
    `order_ttl_ms` are cancelled.
    """

    def __init__(self, account_id: int, symbol: str, *, seed: int, deposit: str = "50000",
                 leverage: int = 20, margin_mode: MarginMode = MarginMode.CROSS,
                 position_mode: PositionMode = PositionMode.ONE_WAY, long_bias: float = 0.5,
                 act_probability: float = 0.1, max_qty: str = "0.5",
                 market_share: float = 0.5, limit_offset: str = "0.001",
                 stop_loss: float = 0.5, take_profit: float = 1.0,
                 max_hold_ms: int = 2 * 3_600_000, order_ttl_ms: int = 5 * 60_000,
                 trend_weight: float = 0.0, trend_lookback_ms: int = 30 * 60_000) -> None:
        self.account_id = account_id
        self.symbol = symbol
        self.seed = seed
        self.rng = random.Random(seed)
        self.deposit = deposit
        self.leverage = leverage
        self.margin_mode = margin_mode
        self.position_mode = position_mode
        self.long_bias = long_bias
        self.act_probability = act_probability
        self.max_qty = max_qty
        self.market_share = market_share
        self.limit_offset_rate = to_rate(limit_offset)
        self.stop_loss = stop_loss
        self.take_profit = take_profit
        self.max_hold_ms = max_hold_ms
        self.order_ttl_ms = order_ttl_ms
        self.trend_weight = trend_weight
        self.trend_lookback_ms = trend_lookback_ms
        self._seen: deque[tuple[int, int]] = deque()  # (ts_ms, index) within the lookback
        self.min_lots = 1  # set at setup, from the instrument
        self.max_lots = 1
        self._opened_ms: dict[int, int] = {}  # when each position index was first seen open

    @property
    def hedge(self) -> bool:
        """Whether the trader holds long and short positions apart (hedge mode)."""
        return self.position_mode is PositionMode.HEDGE

    def setup(self, view: MarketView) -> Iterator[Command]:
        """Deposit, then switch margin and position mode as configured, then set leverage."""
        spec = view.instrument(self.symbol)
        self.min_lots = spec.min_order_qty_lots
        self.max_lots = max(self.min_lots, to_lots(spec, self.max_qty))
        yield Deposit(UNSTAMPED, UNSTAMPED, self.account_id, spec.settle_coin,
                      to_atoms(self.deposit))
        if self.margin_mode is not MarginMode.CROSS:
            yield SetMarginMode(UNSTAMPED, UNSTAMPED, self.account_id, self.margin_mode)
        if self.hedge:
            yield SwitchPositionMode(UNSTAMPED, UNSTAMPED, self.account_id, self.symbol,
                                     PositionMode.HEDGE)
        yield from _leverage_commands(self.account_id, self.symbol, self.leverage)

    def act(self, view: MarketView, ts_ms: int) -> Iterator[Command]:
        """Cancel stale orders, close positions that hit a rule, then maybe open one."""
        index = view.index_ticks(self.symbol)
        if index is None or not view.trading(self.symbol):
            return
        self._seen.append((ts_ms, index))
        while self._seen[0][0] < ts_ms - self.trend_lookback_ms:
            self._seen.popleft()
        orders = view.open_orders(self.account_id, self.symbol)
        if orders and ts_ms - orders[0].created_ts_ms >= self.order_ttl_ms:
            yield CancelAllOrders(UNSTAMPED, UNSTAMPED, self.account_id, self.symbol)
        for idx in ((1, 2) if self.hedge else (0,)):
            summary = view.position_state(self.account_id, self.symbol, idx)
            if summary is None:
                self._opened_ms.pop(idx, None)
                continue
            opened = self._opened_ms.setdefault(idx, ts_ms)
            margin = max(1, summary.margin_atoms)
            if (summary.upnl_atoms <= -self.stop_loss * margin
                    or summary.upnl_atoms >= self.take_profit * margin
                    or ts_ms - opened >= self.max_hold_ms):
                side = Side.SELL if summary.size_lots > 0 else Side.BUY
                yield PlaceOrder(UNSTAMPED, UNSTAMPED, self.account_id, self.symbol, side,
                                 OrderType.MARKET, abs(summary.size_lots), reduce_only=True,
                                 position_idx=idx)
        if self.rng.random() >= self.act_probability:
            return
        side = Side.BUY if self.rng.random() < self._buy_probability() else Side.SELL
        qty = self.rng.randint(self.min_lots, self.max_lots)
        idx = (1 if side is Side.BUY else 2) if self.hedge else 0
        if self.rng.random() < self.market_share:
            yield PlaceOrder(UNSTAMPED, UNSTAMPED, self.account_id, self.symbol, side,
                             OrderType.MARKET, qty, position_idx=idx)
            return
        reach = max(1, _ticks_of_rate(index, self.limit_offset_rate))
        # Away from the index on the order's own side, a quarter of the time across it.
        away = self.rng.randint(-reach // 4, reach)
        price = index - away if side is Side.BUY else index + away
        yield PlaceOrder(UNSTAMPED, UNSTAMPED, self.account_id, self.symbol, side,
                         OrderType.LIMIT, qty, max(1, price), position_idx=idx)


    def _buy_probability(self) -> float:
        """Return the bias, moved by `trend_weight` toward the index's move over the lookback."""
        move = self._seen[-1][1] - self._seen[0][1] if self._seen else 0
        trend = (move > 0) - (move < 0)
        return min(1.0, max(0.0, self.long_bias + self.trend_weight * trend))


def noise_population(symbol: str, count: int, *, seed: int, first_account_id: int = 100,
                     long_bias: float = 0.65, short_bias: float = 0.35,
                     leverage: tuple[int, int] = (10, 50),
                     margin_modes: Sequence[MarginMode] = (MarginMode.CROSS,
                                                           MarginMode.ISOLATED),
                     position_modes: Sequence[PositionMode] = (PositionMode.ONE_WAY,
                                                               PositionMode.HEDGE),
                     **settings: object) -> list[NoiseTrader]:
    """Return `count` noise traders covering the margin modes, position modes and biases.

    Trader k takes margin mode k mod m of `margin_modes` and position mode (k div m) mod p
    of `position_modes`, so m × p or more traders cover every pairing (the defaults: cross
    and isolated, one-way and hedge). It is long-biased (buys with probability `long_bias`)
    when k % 3 != 1, else short-biased (`short_bias`), at a seeded leverage within
    `leverage` (inclusive); `settings` go to every trader.
    """
    low, high = leverage
    if not 1 <= low <= high:
        raise ValueError(f"noise_population: bad leverage range {low}-{high}")
    if not margin_modes or not position_modes:
        raise ValueError("noise_population: at least one margin mode and one position mode")
    chooser = random.Random(seed)
    traders = []
    for k in range(count):
        traders.append(NoiseTrader(
            first_account_id + k, symbol, seed=chooser.getrandbits(32),
            leverage=chooser.randint(low, high),
            margin_mode=margin_modes[k % len(margin_modes)],
            position_mode=position_modes[(k // len(margin_modes)) % len(position_modes)],
            long_bias=short_bias if k % 3 == 1 else long_bias,
            **settings,  # type: ignore[arg-type]
        ))
    return traders
