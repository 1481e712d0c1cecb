"""CPU per order of the whole exchange in one process (`perpx serve`'s layout), no HTTP.

    PYTHONPATH=src python benchmarks/bench_inproc_cpu.py [--orders N] [--clients C]
        [--no-hub] [--runs R] [--profile FILE]

The ladder's `writer` rung (`perpx.bench.ladder`) with a fixed number of orders instead of a
fixed time, so that two runs can be compared by instructions: an `ExchangeService` with its
read side (durable follower, history projector, tickers, klines, funding, books) over a
SQLite journal and ``history.db``, as `perpx serve --no-maker` builds it, and (unless
``--no-hub``) the API's stream hub listening to it with no subscriber, as `perpx serve`
wires it (`perpx.api.app.service_hub`). C clients in this process each send 1-lot-of-0.001
limit orders at the mark, alternating sides (so about every other order trades), the next
once the last is answered: the ladder's flow and concurrency. The figure is the process's
CPU (every thread: `time.process_time`) and its main thread's (`time.thread_time`) per
order, min over R runs, each on a fresh data folder. With --profile, one more run with the
main thread under cProfile, to FILE.

Instructions per order (deterministic under load, unlike the CPU figure), as
`bench_writer_cpu.py`:

    env -u PYTHONDONTWRITEBYTECODE PYTHONPATH=src python benchmarks/bench_inproc_cpu.py \
        --orders 640 --runs 1   # once: writes the .pyc files
    env -u PYTHONDONTWRITEBYTECODE PYTHONPATH=src valgrind --tool=callgrind \
        --callgrind-out-file=OUT.N python benchmarks/bench_inproc_cpu.py --orders N --runs 1

(totals of 9600 − 3200) / 6400 is the process's instructions per order, every thread
(journal and history writers included); the start, the deposits and the imports cancel out.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from perpx.api.server import run
from perpx.convert import to_lots
from perpx.core.commands import Deposit, PlaceOrder
from perpx.core.enums import OrderType, Side, TimeInForce
from perpx.heap import freeze_loaded
from perpx.instruments import load_instruments
from perpx.service import ExchangeService, open_service_journal
from perpx.store.history_sqlite import SqliteHistory

ACCOUNT_BASE = 1000
SYMBOL = "BTCUSDT"


async def _service_run(folder: Path, clients: int, orders: int, hub: bool,
                       profile: cProfile.Profile | None) -> dict[str, Any]:
    specs = load_instruments()
    spec = next(s for s in specs if s.symbol == SYMBOL)
    service = ExchangeService(specs, open_service_journal(folder),
                              history=SqliteHistory(folder / "history.db"), maker=False,
                              feed_interval_s=3600)
    if hub:
        from perpx.api.app import service_hub

        service_hub(service)
    await service.start()  # one feed step: index and mark prices
    freeze_loaded()  # as `perpx serve` does once the service is loaded
    try:
        await service.submit_all([Deposit(0, 0, ACCOUNT_BASE + n, "USDT", 10**15)
                                  for n in range(clients)])
        mark = service.engine.mark_price.get(SYMBOL) or service.engine.index_price[SYMBOL]
        qty = to_lots(spec, "0.001")
        per_client = orders // clients

        async def client(number: int) -> None:
            account = ACCOUNT_BASE + number
            for count in range(per_client):
                side = Side.BUY if (number + count) % 2 else Side.SELL
                await service.submit(PlaceOrder(0, 0, account, SYMBOL, side, OrderType.LIMIT,
                                                qty, mark, TimeInForce.GTC))

        await asyncio.sleep(0.05)
        cpu, thread, wall = time.process_time(), time.thread_time(), time.perf_counter()
        if profile is not None:
            profile.enable()
        await asyncio.gather(*(client(n) for n in range(clients)))
        if profile is not None:
            profile.disable()
        cpu, thread = time.process_time() - cpu, time.thread_time() - thread
        wall = time.perf_counter() - wall
    finally:
        await service.close()
    sent = per_client * clients
    return {"orders": sent, "cpu_us_per_order": cpu * 1e6 / sent,
            "main_us_per_order": thread * 1e6 / sent, "orders_per_s": sent / wall}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=12_800)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--no-hub", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", default="")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="perpx-inproc-cpu-") as tmp:
        for i in range(args.runs):
            results.append(run(_service_run(Path(tmp) / f"r{i}", args.clients, args.orders,
                                            not args.no_hub, None)))
        if args.profile:
            profile = cProfile.Profile(time.thread_time)  # CPU, not waits for the GIL
            run(_service_run(Path(tmp) / "profiled", args.clients, args.orders,
                             not args.no_hub, profile))
            profile.dump_stats(args.profile)
    print(json.dumps({
        "hub": not args.no_hub, "orders": results[0]["orders"], "clients": args.clients,
        "cpu_us_per_order_min": round(min(r["cpu_us_per_order"] for r in results), 1),
        "cpu_us_per_order": [round(r["cpu_us_per_order"], 1) for r in results],
        "main_us_per_order_min": round(min(r["main_us_per_order"] for r in results), 1),
        "orders_per_s": [round(r["orders_per_s"]) for r in results]}))


if __name__ == "__main__":
    main()
