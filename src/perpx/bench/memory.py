"""`perpx bench memory`: the engine's bytes per resting order and per open position.

Both figures are real engine state built through `Engine.apply` alone, measured with
`tracemalloc` (the bytes Python allocated and still holds, after a full garbage collection):

- ``bytes_per_resting_order``: one BTCUSDT engine, accounts funded and the mark set first
  (the baseline), then `orders` limit orders of one lot that never cross: bids under the mark
  and asks over it, spread over LEVELS price levels a side, ORDERS_PER_ACCOUNT per account
  (under Bybit's 500 active orders per symbol). Everything the engine keeps for an order
  counts: the order, its place in the book's level, the engine's indexes by id and by
  account, the margin the clearing reserves for it.
- ``bytes_per_open_position``: SYMBOLS copies of BTCUSDT, accounts funded and marks set
  first (the baseline), then pairs of accounts trade one lot with each other on every symbol
  (a resting sell, then a buy that takes it) until `positions` one-way cross positions are
  open, half long and half short; one more mark per symbol then files them in the risk index
  as every mark move does. Everything the engine keeps for a position counts: the position,
  the account's totals for it, its place in the risk index.

The accounts themselves (wallets, settings) are in the baseline, not in the figures. The
tracer slows Python down several times, so the times printed are not engine speed.
Ends with one JSON line (`perpx bench memory`); `perpx bench match` includes the same summary
at a smaller size under the key ``memory``.
"""

from __future__ import annotations

import gc
import json
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from perpx.bench.risk import Stamper, contracts
from perpx.core import Engine, OrderType, PlaceOrder, Side
from perpx.core.commands import Deposit, MarkPrice
from perpx.core.events import OrderAccepted, Trade

MID = 500_000  # 50,000.0 in ticks of 0.1
LEVELS = 1_000  # price levels a side the resting orders spread over
ORDERS_PER_ACCOUNT = 250
SYMBOLS = 10
FUNDS_ATOMS = 10**7 * 10**8  # ten million USDT an account: margin is never the limit


@contextmanager
def _traced() -> Iterator[None]:
    """Trace allocations for the block, unless a caller already does."""
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    try:
        yield
    finally:
        if not already:
            tracemalloc.stop()


def _held_bytes() -> int:
    """Return the bytes traced and still allocated, once garbage is collected."""
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def _funded(engine: Engine, stamp: Stamper, accounts: int) -> None:
    for account in range(1, accounts + 1):
        stamp(Deposit, account, "USDT", FUNDS_ATOMS)
    for symbol in engine.instruments:
        stamp(MarkPrice, symbol, MID)


def resting_order_bytes(orders: int) -> dict[str, Any]:
    """Rest `orders` non-crossing one-lot limit orders; return their bytes each."""
    if orders < 1:
        raise ValueError("orders must be positive")
    btc = contracts(1)[0]
    accounts = -(-orders // ORDERS_PER_ACCOUNT)
    with _traced():
        engine = Engine([btc])
        stamp = Stamper(engine)
        _funded(engine, stamp, accounts)
        before = _held_bytes()
        started = time.perf_counter()
        for n in range(orders):
            account = 1 + n // ORDERS_PER_ACCOUNT
            level = 1 + (n // 2) % LEVELS
            if n % 2:
                side, price = Side.SELL, MID + level
            else:
                side, price = Side.BUY, MID - level
            events = stamp(PlaceOrder, account, btc.symbol, side, OrderType.LIMIT, 1, price)
            if len(events) != 1 or type(events[0]) is not OrderAccepted:
                raise RuntimeError(f"resting order {n} did not simply rest: {events}")
        seconds = time.perf_counter() - started
        held = _held_bytes() - before
    resting = len(engine.open_orders)
    if resting != orders:
        raise RuntimeError(f"{resting} orders rest, expected {orders}")
    return {"orders": orders, "accounts": accounts, "levels_a_side": min(LEVELS, -(-orders // 2)),
            "bytes": held, "bytes_per_resting_order": round(held / orders, 1),
            "seconds": round(seconds, 1)}


def open_position_bytes(positions: int) -> dict[str, Any]:
    """Open `positions` (rounded up to even) one-lot positions by trades; return bytes each."""
    if positions < 1:
        raise ValueError("positions must be positive")
    pairs_needed = -(-positions // 2)  # one trade opens a long and a short
    symbols = min(SYMBOLS, pairs_needed)
    specs = contracts(symbols)
    account_pairs = -(-pairs_needed // symbols)
    with _traced():
        engine = Engine(specs)
        stamp = Stamper(engine)
        _funded(engine, stamp, 2 * account_pairs)
        before = _held_bytes()
        started = time.perf_counter()
        trades = 0
        for pair in range(account_pairs):
            seller, buyer = 2 * pair + 1, 2 * pair + 2
            for spec in specs:
                if trades == pairs_needed:
                    break
                stamp(PlaceOrder, seller, spec.symbol, Side.SELL, OrderType.LIMIT, 1, MID)
                events = stamp(PlaceOrder, buyer, spec.symbol, Side.BUY, OrderType.LIMIT, 1,
                               MID)
                if not any(type(e) is Trade for e in events):
                    raise RuntimeError(f"accounts {seller} and {buyer} did not trade: {events}")
                trades += 1
        for spec in specs:
            stamp(MarkPrice, spec.symbol, MID + 1)  # files the new positions in the risk index
        seconds = time.perf_counter() - started
        held = _held_bytes() - before
    opened = sum(1 for account in engine.clearing.accounts.values()
                 for position in account.positions.values() if position.size_lots)
    if opened != 2 * trades or engine.open_orders:
        raise RuntimeError(f"{opened} positions and {len(engine.open_orders)} orders left "
                           f"after {trades} trades")
    return {"positions": opened, "accounts": 2 * account_pairs, "symbols": symbols,
            "bytes": held, "bytes_per_open_position": round(held / opened, 1),
            "seconds": round(seconds, 1)}


def measure_memory(orders: int, positions: int) -> dict[str, Any]:
    """Return the memory summary: bytes per resting order and per open position."""
    resting = resting_order_bytes(orders)
    open_ = open_position_bytes(positions)
    return {
        "method": "tracemalloc: bytes held after gc, over a baseline of funded accounts "
                  "and set marks; state built by Engine.apply",
        "orders": resting["orders"],
        "bytes_per_resting_order": resting["bytes_per_resting_order"],
        "positions": open_["positions"],
        "bytes_per_open_position": open_["bytes_per_open_position"],
        "resting_orders_detail": resting,
        "open_positions_detail": open_,
    }


def bench_memory(orders: int = 1_000_000, positions: int = 1_000_000,
                 echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the memory benchmark and return its summary (also echoed, JSON last)."""
    summary = {"bench": "memory", **measure_memory(orders, positions)}
    echo(f"{summary['orders']:,} resting orders: {summary['bytes_per_resting_order']:,.1f} "
         f"bytes each ({summary['resting_orders_detail']['accounts']:,} accounts)")
    echo(f"{summary['positions']:,} open positions: {summary['bytes_per_open_position']:,.1f} "
         f"bytes each ({summary['open_positions_detail']['accounts']:,} accounts, "
         f"{summary['open_positions_detail']['symbols']} symbols)")
    echo(json.dumps(summary))
    return summary
