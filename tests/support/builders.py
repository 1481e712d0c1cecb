"""Named builders: instruments and an engine driver that speaks decimal strings like a client."""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path
from random import Random
from typing import Any

from perpx.convert import to_atoms, to_lots, to_rate, to_ticks
from perpx.core import (
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    Command,
    Engine,
    Event,
    OrderType,
    PlaceOrder,
    Side,
    TimeInForce,
)
from perpx.core.commands import (
    AdjustMargin,
    Deposit,
    IndexPrice,
    MarkPrice,
    SetAutoAddMargin,
    SetLeverage,
    SetMarginMode,
    SetTradingStop,
    SwitchPositionMode,
    Withdraw,
)
from perpx.core.enums import MarginMode, OrderFilter, PositionMode, TriggerBy, TriggerDirection
from perpx.core.instruments import InstrumentSpec
from perpx.instruments import load_instruments


@cache
def bundled() -> dict[str, InstrumentSpec]:
    return {spec.symbol: spec for spec in load_instruments()}


def btcusdt(**overrides: Any) -> InstrumentSpec:
    """Bybit's BTCUSDT (tick 0.10, step 0.001), with any field replaced."""
    return dataclasses.replace(bundled()["BTCUSDT"], **overrides)


def ethusdt(**overrides: Any) -> InstrumentSpec:
    return dataclasses.replace(bundled()["ETHUSDT"], **overrides)


@cache
def bundled_inverse() -> dict[str, InstrumentSpec]:
    return {spec.symbol: spec for spec in load_instruments("inverse")}


def btcusd(**overrides: Any) -> InstrumentSpec:
    """Bybit's BTCUSD inverse perpetual (tick 0.10 USD, 1 USD contracts), any field replaced."""
    return dataclasses.replace(bundled_inverse()["BTCUSD"], **overrides)


@cache
def bundled_usdc() -> dict[str, InstrumentSpec]:
    return {spec.symbol: spec for spec in load_instruments("usdc")}


def btcperp(**overrides: Any) -> InstrumentSpec:
    """Bybit's BTCPERP USDC perpetual (tick 0.5 USDC, step 0.001 BTC), any field replaced."""
    return dataclasses.replace(bundled_usdc()["BTCPERP"], **overrides)


# The tests' own copies of the published vectors, the spec text they cite and real prices
# (tests/data/README.md says where each came from): a clone needs nothing beside it.
TEST_DATA = Path(__file__).resolve().parents[1] / "data"
PRICES = TEST_DATA / "prices"
VECTORS = TEST_DATA / "vectors"

RICH = "10000000"  # 10M USDT: enough that margin never refuses a matching test's order


def funded_engine(specs: list[InstrumentSpec], accounts: range | list[int],
                  amount: str = RICH) -> Engine:
    """An engine whose `accounts` each deposited `amount` USDT, at seq 1..len(accounts)."""
    engine = Engine(specs)
    for seq, account in enumerate(accounts, start=1):
        engine.apply(Deposit(seq, seq, account, "USDT", to_atoms(amount)))
    return engine


class Driver:
    """Stamps seq and time on commands, applies them, and checks invariants after each one.

    Accounts 1-9 start with 10M USDT each unless `funded` says otherwise.
    """

    def __init__(self, *specs: InstrumentSpec, start_ts_ms: int = 1_700_000_000_000,
                 funded: dict[int, str] | None = None) -> None:
        self.engine = Engine(specs or (btcusdt(),))
        self.seq = 0
        self.ts_ms = start_ts_ms
        self.log: list[Command] = []
        for account, amount in (funded if funded is not None
                                else dict.fromkeys(range(1, 10), RICH)).items():
            self.deposit(account, amount)

    def deposit(self, account: int, amount: str, coin: str = "USDT") -> list[Event]:
        seq, ts = self.stamp()
        return self.apply(Deposit(seq, ts, account, coin, to_atoms(amount)))

    def spec(self, symbol: str = "BTCUSDT") -> InstrumentSpec:
        return self.engine.instruments[symbol]

    def stamp(self) -> tuple[int, int]:
        self.seq += 1
        self.ts_ms += 1
        return self.seq, self.ts_ms

    def apply(self, command: Command) -> list[Event]:
        self.log.append(command)
        events = self.engine.apply(command)
        self.engine.check_invariants()
        return events

    def withdraw(self, account: int, amount: str, coin: str = "USDT") -> list[Event]:
        seq, ts = self.stamp()
        return self.apply(Withdraw(seq, ts, account, coin, to_atoms(amount)))

    def leverage(self, account: int, buy: str, sell: str | None = None,
                 symbol: str = "BTCUSDT") -> list[Event]:
        seq, ts = self.stamp()
        return self.apply(SetLeverage(seq, ts, account, symbol, to_rate(buy),
                                      to_rate(sell if sell is not None else buy)))

    def margin_mode(self, account: int, mode: MarginMode) -> list[Event]:
        seq, ts = self.stamp()
        return self.apply(SetMarginMode(seq, ts, account, mode))

    def position_mode(self, account: int, mode: PositionMode,
                      symbol: str = "BTCUSDT") -> list[Event]:
        seq, ts = self.stamp()
        return self.apply(SwitchPositionMode(seq, ts, account, symbol, mode))

    def adjust_margin(self, account: int, amount: str, idx: int = 0,
                      symbol: str = "BTCUSDT") -> list[Event]:
        seq, ts = self.stamp()
        return self.apply(AdjustMargin(seq, ts, account, symbol, idx, to_atoms(amount)))

    def auto_add_margin(self, account: int, enabled: bool, idx: int = 0,
                        symbol: str = "BTCUSDT") -> list[Event]:
        seq, ts = self.stamp()
        return self.apply(SetAutoAddMargin(seq, ts, account, symbol, idx, enabled))

    def mark(self, price: str, symbol: str = "BTCUSDT") -> list[Event]:
        seq, ts = self.stamp()
        return self.apply(MarkPrice(seq, ts, symbol, to_ticks(self.spec(symbol), price)))

    def position(self, account: int, idx: int = 0, symbol: str = "BTCUSDT") -> Any:
        acct = self.engine.clearing.account(account)
        return acct.position(symbol, idx) if acct else None

    def wallet(self, account: int, coin: str = "USDT") -> int:
        acct = self.engine.clearing.account(account)
        return acct.balance(coin) if acct else 0

    def figures(self, account: int) -> Any:
        return self.engine.clearing.figures(self.engine.clearing.accounts[account])

    def limit(self, account: int, side: str, price: str, qty: str, *, symbol: str = "BTCUSDT",
              tif: TimeInForce = TimeInForce.GTC, **kw: Any) -> list[Event]:
        spec = self.spec(symbol)
        seq, ts = self.stamp()
        return self.apply(PlaceOrder(seq, ts, account, symbol, Side[side.upper()], OrderType.LIMIT,
                                     to_lots(spec, qty), to_ticks(spec, price),
                                     time_in_force=tif, **kw))

    def market(self, account: int, side: str, qty: str, *, symbol: str = "BTCUSDT",
               **kw: Any) -> list[Event]:
        spec = self.spec(symbol)
        seq, ts = self.stamp()
        return self.apply(PlaceOrder(seq, ts, account, symbol, Side[side.upper()],
                                     OrderType.MARKET, to_lots(spec, qty), **kw))

    def amend(self, account: int, order_id: int, *, qty: str | None = None,
              price: str | None = None, trigger: str | None = None, symbol: str = "BTCUSDT",
              **kw: Any) -> list[Event]:
        spec = self.spec(symbol)
        for name in ("take_profit_ticks", "stop_loss_ticks"):
            if isinstance(kw.get(name), str):
                kw[name] = 0 if kw[name] == "0" else to_ticks(spec, kw[name])
        seq, ts = self.stamp()
        return self.apply(AmendOrder(
            seq, ts, account, symbol, order_id,
            qty_lots=None if qty is None else to_lots(spec, qty),
            price_ticks=None if price is None else to_ticks(spec, price),
            trigger_price_ticks=None if trigger is None else to_ticks(spec, trigger), **kw))

    def cancel(self, account: int, order_id: int | None = None, *, link: str = "",
               symbol: str = "BTCUSDT") -> list[Event]:
        seq, ts = self.stamp()
        return self.apply(CancelOrder(seq, ts, account, symbol, order_id, link))

    def cancel_all(self, account: int, symbol: str = "BTCUSDT",
                   order_filter: OrderFilter = OrderFilter.ALL) -> list[Event]:
        seq, ts = self.stamp()
        return self.apply(CancelAllOrders(seq, ts, account, symbol, order_filter))

    def index(self, price: str, symbol: str = "BTCUSDT") -> list[Event]:
        seq, ts = self.stamp()
        return self.apply(IndexPrice(seq, ts, symbol, to_ticks(self.spec(symbol), price)))

    def conditional(self, account: int, side: str, qty: str, trigger: str, *,
                    direction: int, price: str | None = None, by: TriggerBy = TriggerBy.LAST_PRICE,
                    symbol: str = "BTCUSDT", **kw: Any) -> list[Event]:
        """A conditional order: market unless `price` is given; TP/SL as decimal strings."""
        spec = self.spec(symbol)
        for name in ("take_profit_ticks", "stop_loss_ticks", "tp_limit_price_ticks",
                     "sl_limit_price_ticks"):
            if isinstance(kw.get(name), str):
                kw[name] = to_ticks(spec, kw[name])
        seq, ts = self.stamp()
        return self.apply(PlaceOrder(
            seq, ts, account, symbol, Side[side.upper()],
            OrderType.MARKET if price is None else OrderType.LIMIT,
            to_lots(spec, qty) if qty != "0" else 0,
            None if price is None else to_ticks(spec, price),
            trigger_price_ticks=to_ticks(spec, trigger),
            trigger_direction=TriggerDirection(direction), trigger_by=by, **kw))

    def trading_stop(self, account: int, *, tp: str | None = None, sl: str | None = None,
                     trailing: str | None = None, active: str | None = None,
                     size: str | None = None, idx: int = 0, symbol: str = "BTCUSDT",
                     **kw: Any) -> list[Event]:
        spec = self.spec(symbol)

        def ticks(value: str | None) -> int | None:
            return None if value is None else (0 if value == "0" else to_ticks(spec, value))

        lots = None if size is None else to_lots(spec, size)
        for name in ("tp_limit_price_ticks", "sl_limit_price_ticks"):
            if isinstance(kw.get(name), str):
                kw[name] = to_ticks(spec, kw[name])
        seq, ts = self.stamp()
        return self.apply(SetTradingStop(
            seq, ts, account, symbol, idx, take_profit_ticks=ticks(tp),
            stop_loss_ticks=ticks(sl), trailing_stop_ticks=ticks(trailing),
            active_price_ticks=ticks(active), tp_size_lots=lots if tp else None,
            sl_size_lots=lots if sl else None, **kw))

    def waiting(self, account: int, symbol: str = "BTCUSDT") -> list[Any]:
        """The account's untriggered orders on `symbol`, oldest first."""
        return self.engine.stops.waiting.of(account, symbol)

    def depth(self, symbol: str = "BTCUSDT", limit: int = 50) -> tuple[list[Any], list[Any]]:
        return self.engine.books[symbol].depth(limit)


def of_type(events: list[Event], kind: type) -> list[Any]:
    return [e for e in events if type(e) is kind]


def state_apart_from_seq(engine: Engine) -> dict[str, Any]:
    """The snapshot without `last_seq` and `last_ts_ms`, which every command advances."""
    snapshot = engine.to_snapshot()
    del snapshot["last_seq"]
    del snapshot["last_ts_ms"]
    return snapshot


def restored_midway(specs: list[InstrumentSpec], commands: list[Command], cut: int) -> Engine:
    """Apply `commands[:cut]`, restore a new engine from a snapshot, apply the rest to it."""
    first = Engine(specs)
    for command in commands[:cut]:
        first.apply(command)
    restored = Engine.from_snapshot(specs, first.to_snapshot())
    for command in commands[cut:]:
        restored.apply(command)
    restored.check_invariants()
    return restored


def amend_or_cancel_open(rng: Random, seq: int, engine: Engine, lot: dict[str, int]) -> Command:
    """Draw a cancel (2 in 5) or an amend of a random open order of `engine`.

    The amend moves the quantity by up to 5 lots (half the time) and the price by up to 15
    ticks (7 in 10); either may stay. The streams of the property tests that keep state per
    order (the kept order loss, the slack terms) draw their order changes here.
    """
    order = engine.open_orders[rng.choice(sorted(engine.open_orders))]
    if rng.random() < 0.4:
        return CancelOrder(seq, seq, order.account_id, order.symbol, order.order_id)
    qty = (max(1, order.qty_lots // lot[order.symbol] + rng.randint(-5, 5))
           * lot[order.symbol]) if rng.random() < 0.5 else None
    price = order.price_ticks + rng.randint(-15, 15) if rng.random() < 0.7 else None
    return AmendOrder(seq, seq, order.account_id, order.symbol, order.order_id,
                      qty_lots=qty, price_ticks=price)
