"""CPU per command of a history projector folding N durable batches, in process.

    PYTHONPATH=src python benchmarks/bench_projector_cpu.py [--commands N] [--batch B]
        [--flow api|mixed] [--runs R] [--rate R] [--profile FILE]

What projector 0 does for each message of the split layout (`perpx serve --gateways 1
--projectors 1 --bus nats://...`), minus the NATS client: decode the batch's bytes
(`BatchCodec.decode`, as `JetStreamBus.subscribe` does), fold it into the history tables
(`HistoryProjector.apply`: `readside.fold`, the row sinks, the watermark, one commit per
batch on the history thread), and a final commit. The flow is applied to an engine and
encoded in batches of B commands before the clock starts.

Flows: ``api`` is what `perpx bench api` sends, 64 accounts each placing 1-lot limit orders
at one price, alternating sides, so about every other order trades with a resting one;
``mixed`` is `perpx.store.loadflow.order_flow` (crosses, cancels, market orders, prices).
With --rate R the messages arrive at R commands per second (the main thread sleeps
between them, as a projector waits on NATS): a commit then carries several batches only
when the history thread is slower than the messages come. Figures: the process's CPU
(every thread: `time.process_time`) and the main thread's (`time.thread_time`) per command,
min over the runs, each on fresh SQLite tables. With --profile, one more run under cProfile
(main thread only, CPU time), its statistics written to FILE.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from perpx.bus.codec import BatchCodec, Durable, EventBatch
from perpx.core.commands import Command, Deposit, PlaceOrder
from perpx.core.engine import Engine
from perpx.core.enums import OrderType, Side, TimeInForce
from perpx.heap import freeze_loaded
from perpx.instruments import load_instruments
from perpx.roles.projector import HistoryProjector
from perpx.store import open_history
from perpx.store.loadflow import MID_TICKS, order_flow

START_MS = 1_700_000_000_000


def api_flow(count: int, accounts: int = 64) -> list[Command]:
    """Deposits, then 1-lot limit orders at one price, each account alternating sides."""
    out: list[Command] = [Deposit(0, 0, a, "USDT", 10**15) for a in range(1, accounts + 1)]
    n = 0
    while len(out) < count:
        account = n % accounts + 1
        side = Side.BUY if (n // accounts + account) % 2 else Side.SELL
        out.append(PlaceOrder(0, 0, account, "BTCUSDT", side, OrderType.LIMIT, 1, MID_TICKS,
                              time_in_force=TimeInForce.GTC))
        n += 1
    return out[:count]


def bodies(flow: str, count: int, batch: int) -> list[bytes]:
    """Apply the flow to an engine; return its entries encoded as the writer publishes them."""
    commands = api_flow(count) if flow == "api" else list(order_flow(count, 5))
    engine = Engine(load_instruments())
    entries: list[Durable] = []
    for seq, command in enumerate(commands, start=1):
        # A few commands per millisecond, as under load (candles and funding rarely close).
        stamped = msgspec.structs.replace(command, seq=seq, ts_ms=START_MS + seq // 4)
        entries.append(Durable(seq, stamped.ts_ms, engine.apply(stamped)))
    codec = BatchCodec()
    return [codec.encode(EventBatch.of(entries[i:i + batch]))
            for i in range(0, len(entries), batch)]


def run(messages: list[bytes], folder: Path, name: str,
        profile: cProfile.Profile | None = None, every_s: float = 0.0) -> dict[str, Any]:
    """Fold every message into fresh tables; CPU seconds of the process and main thread."""
    history = open_history(str(folder / f"{name}.db"), beside_journal=False)
    projector = HistoryProjector(load_instruments(), history, checkpoint_every=2**62,
                                 checkpoint_seconds=float("inf"), say=lambda _: None)
    codec = BatchCodec()
    freeze_loaded()  # as `perpx serve --role projector` does once its state is loaded
    try:
        cpu, thread = time.process_time(), time.thread_time()
        if profile is not None:
            profile.enable()
        due = time.perf_counter()
        for body in messages:
            if every_s:  # messages arrive at the writer's pace, not all at once
                due += every_s
                time.sleep(max(0.0, due - time.perf_counter()))
            projector.apply(codec.decode(body))
        projector.sync()
        if profile is not None:
            profile.disable()
        cpu, thread = time.process_time() - cpu, time.thread_time() - thread
    finally:
        history.close()
    return {"cpu_s": cpu, "main_s": thread, "commands": projector.commands,
            "events": projector.events}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--flow", choices=("api", "mixed"), default="api")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="commands per second the messages arrive at (0: all at once)")
    parser.add_argument("--profile", default="")
    args = parser.parse_args()
    messages = bodies(args.flow, args.commands, args.batch)
    results = []
    with tempfile.TemporaryDirectory(prefix="perpx-projector-cpu-") as tmp:
        folder = Path(tmp)
        for i in range(args.runs):
            results.append(run(messages, folder, f"r{i}",
                               every_s=args.batch / args.rate if args.rate else 0.0))
        if args.profile:
            profile = cProfile.Profile(time.thread_time)  # CPU, not waits for the GIL
            run(messages, folder, "profiled", profile)
            profile.dump_stats(args.profile)
    commands = results[0]["commands"]
    cpu = [r["cpu_s"] * 1e6 / commands for r in results]
    main_us = [r["main_s"] * 1e6 / commands for r in results]
    print(json.dumps({
        "flow": args.flow, "commands": commands, "events": results[0]["events"],
        "batch": args.batch, "rate": args.rate, "cpu_us_per_command_min": round(min(cpu), 2),
        "cpu_us_per_command": [round(x, 2) for x in cpu],
        "main_thread_us_per_command_min": round(min(main_us), 2)}))


if __name__ == "__main__":
    main()
