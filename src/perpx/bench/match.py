"""`perpx bench match`: perpx, the baseline and PyPI peers on streams; a profile of the engine.

The standard stream runs through perpx, the baseline and the peers; the realistic stream
through the engine; ``--profile`` profiles the engine instead.

perpx runs twice: as the whole engine (validation, the price band, margin checks, settlement
of every fill into positions, fees and wallets, events) and as its book alone (`OrderBook` and
`match`, as the peers are: no accounts). For each contender the stream is converted untimed,
then replayed twice: once bare for throughput (events/s), once with a clock around every event
for the p50/p99 latency. All run in one process on one stream, so the ratios hold anywhere.

The standard stream (seed 42, 60/30/10) is unchanged so that figures stay comparable; it never
moves a mark, refuses an order for margin or liquidates anyone. The realistic stream
(`perpx.bench.realistic`, under the JSON key ``realistic``) does all three and settles funding;
it runs on the engine only (the peers have no accounts) and reports its counts beside its
figures. The baseline is `perpx.bench.reference.LevelBook`, O(log n) per event.
"""

from __future__ import annotations

import cProfile
import gc
import json
import platform
import pstats
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from perpx.bench.memory import measure_memory
from perpx.bench.realistic import RealisticStream, realistic_stream
from perpx.bench.reference import run_reference
from perpx.bench.stream import BUY, CANCEL, LIMIT, StreamEvent, standard_stream
from perpx.core import (
    CancelOrder,
    Command,
    Engine,
    OrderAccepted,
    OrderType,
    PlaceOrder,
    Side,
)
from perpx.core.book.book import OrderBook
from perpx.core.book.order import RestingOrder
from perpx.core.commands import Deposit
from perpx.core.enums import SmpType, TimeInForce
from perpx.core.matching import match
from perpx.instruments import load_instruments

ACCOUNTS = 1_000
FUNDS_ATOMS = 10**9 * 10**8  # a billion USDT each: the stream never runs out of margin


@dataclass(frozen=True)
class Figures:
    """What one contender measured on the stream."""

    name: str
    events: int
    events_per_s: float
    p50_ns: int
    p99_ns: int

    def as_dict(self) -> dict[str, Any]:
        """Return the figures for the JSON summary."""
        return {"events_per_s": round(self.events_per_s), "p50_ns": self.p50_ns,
                "p99_ns": self.p99_ns}


def percentile(sorted_values: Sequence[int], fraction: float) -> int:
    """Return the nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return 0
    rank = min(len(sorted_values) - 1, max(0, int(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def funded_engine() -> Engine:
    """Return an engine with BTCUSDT whose accounts 1..ACCOUNTS hold FUNDS_ATOMS each."""
    spec = next(s for s in load_instruments() if s.symbol == "BTCUSDT")
    engine = Engine([spec])
    for account in range(1, ACCOUNTS + 1):
        engine.apply(Deposit(account, 0, account, "USDT", FUNDS_ATOMS))
    return engine


def perpx_commands(stream: list[StreamEvent]) -> list[Command]:
    """Turn the stream into engine commands, learning each order's engine id in a dry run.

    The engine numbers accepted orders itself; a cancel must name that number, so a first
    pass on a throwaway engine records which stream id became which engine id.
    """
    dry = funded_engine()
    engine_id: dict[int, int] = {}
    commands: list[Command] = []
    for seq, (kind, order_id, side, price, qty) in enumerate(stream, start=ACCOUNTS + 1):
        account = 1 + order_id % ACCOUNTS
        order_side = Side.BUY if side == BUY else Side.SELL
        command: Command
        if kind == CANCEL:
            command = CancelOrder(seq, seq, account, "BTCUSDT", engine_id.get(order_id, 0))
        elif kind == LIMIT:
            command = PlaceOrder(seq, seq, account, "BTCUSDT", order_side, OrderType.LIMIT, qty,
                                 price)
        else:
            command = PlaceOrder(seq, seq, account, "BTCUSDT", order_side, OrderType.MARKET, qty)
        events = dry.apply(command)
        if kind != CANCEL and events and type(events[0]) is OrderAccepted:
            engine_id[order_id] = events[0].order_id
        commands.append(command)
    return commands


def run_perpx(commands: list[Command], timed: bool) -> list[int]:
    """Apply `commands` to a fresh funded engine; per-event latencies in ns if `timed`."""
    engine = funded_engine()
    apply = engine.apply
    if not timed:
        for command in commands:
            apply(command)
        return []
    clock = time.perf_counter_ns
    latencies: list[int] = []
    record = latencies.append
    for command in commands:
        start = clock()
        apply(command)
        record(clock() - start)
    return latencies


def run_realistic(stream: RealisticStream, timed: bool) -> list[int]:
    """Apply the realistic stream's commands to a fresh engine after its (untimed) setup."""
    engine = stream.engine()
    apply = engine.apply
    if not timed:
        for command in stream.commands:
            apply(command)
        return []
    clock = time.perf_counter_ns
    latencies: list[int] = []
    record = latencies.append
    for command in stream.commands:
        start = clock()
        apply(command)
        record(clock() - start)
    return latencies


def run_perpx_book(stream: list[StreamEvent], timed: bool) -> list[int]:
    """Replay the stream on perpx's book and matcher alone, as the peers run (no accounts)."""
    book = OrderBook("BTCUSDT")
    orders: dict[int, RestingOrder] = {}
    clock = time.perf_counter_ns
    latencies: list[int] = []
    record = latencies.append
    trade_id = 1
    gtc, ioc, none = TimeInForce.GTC, TimeInForce.IOC, SmpType.NONE

    for kind, order_id, side, price, qty in stream:
        start = clock() if timed else 0
        if kind == CANCEL:
            order = orders.pop(order_id, None)
            if order is not None:
                (book.bids if order.side is Side.BUY else book.asks).remove(order)
        else:
            order_side = Side.BUY if side == BUY else Side.SELL
            limit = price if kind == LIMIT else (2**62 if side == BUY else 1)
            order = RestingOrder(order_id, 1, "BTCUSDT", order_side, OrderType.LIMIT, limit, qty,
                                 gtc if kind == LIMIT else ioc, False, False, 0, "", none, 0)
            opposite = book.asks if side == BUY else book.bids
            keys = opposite.keys
            if keys and keys[0] <= limit * opposite.sign:
                steps, trade_id, _, _ = match(opposite, order, limit, 0, trade_id)
                for step in steps:  # the makers that left the book
                    if not step.maker.in_book:
                        del orders[step.maker.order_id]
            if order.leaves_lots and kind == LIMIT:
                (book.bids if side == BUY else book.asks).add(order)
                orders[order_id] = order
        if timed:
            record(clock() - start)
    return latencies


def measure(name: str, events: int, run: Callable[[bool], list[int]]) -> Figures:
    """Time one bare pass for throughput and one clocked pass for latency percentiles."""
    gc.collect()
    start = time.perf_counter()
    run(False)
    elapsed = time.perf_counter() - start
    gc.collect()
    latencies = sorted(run(True))
    return Figures(name, events, events / elapsed, percentile(latencies, 0.50),
                   percentile(latencies, 0.99))


def bench_match(events: int, seed: int = 42, with_peers: bool = True,
                echo: Callable[[str], None] = print, realistic: bool = True,
                memory: int = 0) -> dict[str, Any]:
    """Run the matching benchmark and return its summary (also echoed, JSON last).

    With `realistic` the realistic stream of the same length and seed runs too (on the engine
    only), under the key ``realistic``. With `memory` > 0, after every timing, the engine's
    bytes per resting order and per open position with that many of each
    (`perpx.bench.memory`), under the key ``memory``.
    """
    stream = standard_stream(events, seed)
    results: list[Figures] = []
    commands = perpx_commands(stream)
    results.append(measure("perpx engine (accounts, margin, fills)", events,
                           lambda timed: run_perpx(commands, timed)))
    results.append(measure("perpx book + matcher", events,
                           lambda timed: run_perpx_book(stream, timed)))
    results.append(measure("reference (price levels, heaps)", events,
                           lambda timed: run_reference(stream, timed)))
    peer_figures: list[Figures] = []
    pure_python: frozenset[str] = frozenset()
    if with_peers:
        from perpx.bench.peers import PURE_PYTHON, available_peers

        for peer in available_peers():

            def run_peer(timed: bool, peer: Any = peer) -> list[int]:
                prepared = peer.prepare(stream)  # a replay consumes its book
                latencies: list[int] = peer.run(prepared, timed)
                return latencies

            pure_python = PURE_PYTHON
            figures = measure(peer.name, events, run_peer)
            peer_figures.append(figures)
            results.append(figures)
    ours, book = results[0], results[1]
    real: RealisticStream | None = realistic_stream(events, seed) if realistic else None
    real_figures = (measure("perpx engine, realistic stream", events,
                            lambda timed: run_realistic(real, timed))
                    if real is not None else None)
    echo(f"standard stream: {events:,} events (seed {seed}); Python {platform.python_version()}")
    echo(f"{'contender':<40} {'events/s':>12} {'p50 ns':>9} {'p99 ns':>9} {'perpx x':>8}")
    for figures in results:
        echo(f"{figures.name:<40} {figures.events_per_s:>12,.0f} {figures.p50_ns:>9,} "
             f"{figures.p99_ns:>9,} {ours.events_per_s / figures.events_per_s:>8.2f}")
    if real is not None and real_figures is not None:
        echo(f"realistic stream: {events:,} commands (seed {seed}): "
             f"{real_figures.events_per_s:,.0f} events/s, p50 {real_figures.p50_ns:,} ns, "
             f"p99 {real_figures.p99_ns:,} ns; {real.counts}")
    best_peer = max(peer_figures, key=lambda f: f.events_per_s, default=None)
    python_peers = [f for f in peer_figures if f.name.split()[0] in pure_python]
    best_python = max(python_peers, key=lambda f: f.events_per_s, default=None)

    def ratio(mine: Figures, other: Figures | None) -> float | None:
        return round(mine.events_per_s / other.events_per_s, 3) if other else None

    summary: dict[str, Any] = {
        "bench": "match",
        "events": events,
        "seed": seed,
        **ours.as_dict(),
        "book": book.as_dict(),
        "reference": results[2].as_dict(),
        "ratio_vs_reference": ratio(ours, results[2]),
        "book_ratio_vs_reference": ratio(book, results[2]),
        "peers": {f.name: f.as_dict() for f in peer_figures},
        "best_peer": best_peer.name if best_peer else None,
        "ratio_vs_best_peer": ratio(ours, best_peer),
        "book_ratio_vs_best_peer": ratio(book, best_peer),
        "best_python_peer": best_python.name if best_python else None,
        "ratio_vs_best_python_peer": ratio(ours, best_python),
        "book_ratio_vs_best_python_peer": ratio(book, best_python),
    }
    if real is not None and real_figures is not None:
        summary["realistic"] = {"events": events, **real_figures.as_dict(),
                                "ratio_vs_standard": ratio(real_figures, ours),
                                "counts": real.counts}
    if memory > 0:
        held = measure_memory(memory, memory)
        echo(f"memory with {held['orders']:,} resting orders and {held['positions']:,} open "
             f"positions: {held['bytes_per_resting_order']:,.1f} bytes an order, "
             f"{held['bytes_per_open_position']:,.1f} bytes a position (tracemalloc)")
        summary["memory"] = held
    echo(json.dumps(summary))
    return summary


def profile_engine(events: int = 100_000, seed: int = 42, top: int = 15,
                   echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Profile the engine (cProfile) applying `events` standard-stream commands; JSON last.

    `perpx bench match --profile --events 100000` reproduces the profile issue #14 cites.
    The commands are built untimed first, as in the benchmark; only the apply loop is
    profiled. Prints the `top` functions by cumulative and by total (own) time, then a JSON
    summary with the same rows as ``[function, calls, tottime_s, cumtime_s]``.
    """
    commands = perpx_commands(standard_stream(events, seed))
    engine = funded_engine()
    apply = engine.apply
    profiler = cProfile.Profile()
    gc.collect()
    profiler.enable()
    for command in commands:
        apply(command)
    profiler.disable()
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total_calls = sum(row[1] for row in raw.values())
    total_s: float = stats.total_tt  # type: ignore[attr-defined]

    label: Callable[[Any], str] = pstats.func_std_string  # type: ignore[attr-defined]

    def rows(key: int) -> list[list[Any]]:
        ordered = sorted(raw.items(), key=lambda item: item[1][key], reverse=True)[:top]
        return [[label(func).split("/src/", 1)[-1], calls, round(tt, 4), round(ct, 4)]
                for func, (_, calls, tt, ct, _) in ordered]

    summary: dict[str, Any] = {
        "bench": "match-profile", "events": events, "seed": seed,
        "profiled_s": round(total_s, 3), "calls_per_command": round(total_calls / events, 1),
        "by_cumulative": rows(3), "by_total": rows(2),
    }
    echo(f"cProfile of the engine on {events:,} standard-stream commands (seed {seed}): "
         f"{total_s:.2f} s profiled, {total_calls / events:.1f} calls a command")
    for title, key in (("cumulative", "by_cumulative"), ("total (own)", "by_total")):
        echo(f"top {top} by {title} time: {'calls':>10} {'tottime s':>10} {'cumtime s':>10}")
        for name, calls, tt, ct in summary[key]:
            echo(f"  {name[-60:]:<60} {calls:>10,} {tt:>10.3f} {ct:>10.3f}")
    echo(json.dumps(summary))
    return summary
