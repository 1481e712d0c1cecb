"""CPU per order of the writer alone (split layout), its gateway replaced by a light client.

    PYTHONPATH=src python benchmarks/bench_writer_cpu.py [--orders N] [--clients C]
        [--bus memory|nats://HOST:PORT] [--runs R] [--profile FILE]

The writer of `perpx serve --gateways 1 --projectors 1 --bus ...` is an `ExchangeService`
with `read_side=False` over a SQLite journal, a `BusPublisher` and a `CommandEndpoint` on a
Unix socket. This runs exactly that in this process, and in a child process C clients
sharing `--connections` `UnixWriterClient`s (default 1: one gateway's connection, many
requests in flight on it) each sending 1-lot limit orders
at one price with a request id, alternating sides (what `perpx bench api` sends, so about
every other order trades), the next once the last is answered. The figure is the writer
process's CPU (every thread: `time.process_time`) and its main thread's (`time.thread_time`)
per order acknowledged, while the orders flow; min over R runs, each on a fresh journal.
``--bus nats://...`` publishes to a fresh JetStream stream (deleted afterwards); ``memory``
to an in-process bus that only encodes each batch as JetStream would (no network).
With --profile, one more run with the writer's main thread under cProfile, to FILE.

Instructions per order (deterministic under load, unlike the CPU figure):

    env -u PYTHONDONTWRITEBYTECODE PYTHONPATH=src python benchmarks/bench_writer_cpu.py \
        --orders 640 --runs 1   # once: writes the .pyc files
    env -u PYTHONDONTWRITEBYTECODE PYTHONPATH=src valgrind --tool=callgrind \
        --trace-children=no --callgrind-out-file=OUT.N python benchmarks/bench_writer_cpu.py \
        --orders N --runs 1     # N = 3200, then 9600

(totals of 9600 − 3200) / 6400 is the writer's instructions per order (its start, the
deposits and the imports cancel out). With ``PYTHONDONTWRITEBYTECODE=1`` (this workplace's
environment) every run compiles every module it imports, and two runs that happen to import
differently (a source edited between them, two runs racing to write the same .pyc) differ
by millions of instructions of `compile`: warm the .pyc files first, and check that
`builtin_compile` is the same in both outputs (`callgrind_annotate --inclusive=yes`).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import multiprocessing
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from perpx.api.server import run
from perpx.bus import BusPublisher, EventBatch, InProcessBus, JetStreamBus
from perpx.bus.codec import BatchCodec
from perpx.core.commands import Deposit, PlaceOrder
from perpx.core.enums import OrderType, Side, TimeInForce
from perpx.heap import freeze_loaded
from perpx.instruments import load_instruments
from perpx.service import ExchangeService, open_service_journal
from perpx.store.journal import new_request_id
from perpx.store.loadflow import MID_TICKS
from perpx.transport import CommandEndpoint, UnixWriterClient

ACCOUNT_BASE = 1000


class EncodingBus(InProcessBus):
    """An in-process bus that also encodes each batch, as the JetStream bus does."""

    def __init__(self) -> None:
        super().__init__(keep_commands=100_000)
        self._codec = BatchCodec()

    async def publish(self, batch: EventBatch) -> bool:
        self._codec.encode(batch)
        return await super().publish(batch)


def _clients_main(socket_path: str, clients: int, connections: int, orders: int, start: Any,
                  done: Any) -> None:
    """The child: fund the accounts, wait for the go, send the orders; say how many."""

    async def main() -> None:
        shared = [UnixWriterClient(socket_path, timeout_s=60) for _ in range(connections)]
        made = [shared[n % connections] for n in range(clients)]
        for n, client in enumerate(made):
            await client.submit(Deposit(0, 0, ACCOUNT_BASE + n, "USDT", 10**15),
                                new_request_id())
        start.get()
        per_client = orders // clients

        async def send(n: int, client: UnixWriterClient) -> None:
            for i in range(per_client):
                side = Side.BUY if (i + n) % 2 else Side.SELL
                await client.submit(PlaceOrder(0, 0, ACCOUNT_BASE + n, "BTCUSDT", side,
                                               OrderType.LIMIT, 1, MID_TICKS,
                                               time_in_force=TimeInForce.GTC),
                                    new_request_id())

        await asyncio.gather(*(send(n, c) for n, c in enumerate(made)))
        done.put(per_client * clients)
        for client in shared:
            await client.close()

    run(main())


async def _writer(folder: Path, bus_url: str, clients: int, connections: int, orders: int,
                  profile: cProfile.Profile | None) -> dict[str, Any]:
    stream = f"PERPX_BENCH_{uuid.uuid4().hex[:10].upper()}"
    bus = JetStreamBus(bus_url, stream) if bus_url.startswith("nats") else EncodingBus()
    publisher = BusPublisher(bus)
    service = ExchangeService(load_instruments(), open_service_journal(folder), maker=False,
                              bus=publisher, read_side=False)
    endpoint = CommandEndpoint(service.submit, stopped=service.stopped.is_set,
                               durable_seq=lambda: service.sequencer.durable_seq,
                               submit_entries=service.submit_entries)
    freeze_loaded()  # as `perpx serve` does once the writer's state is loaded
    socket_path = str(folder / "w.sock")
    await endpoint.start_unix(socket_path)
    context = multiprocessing.get_context("spawn")
    start, done = context.Queue(), context.Queue()
    child = context.Process(target=_clients_main, daemon=True,
                            args=(socket_path, clients, connections, orders, start, done))
    child.start()
    loop = asyncio.get_running_loop()
    try:
        while service.sequencer.durable_seq < clients:  # the deposits
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        cpu, thread, wall = time.process_time(), time.thread_time(), time.perf_counter()
        if profile is not None:
            profile.enable()
        start.put("go")
        sent = await loop.run_in_executor(None, done.get)
        if profile is not None:
            profile.disable()
        cpu, thread = time.process_time() - cpu, time.thread_time() - thread
        wall = time.perf_counter() - wall
    finally:
        child.join(10)
        await endpoint.close()
        await service.close()
        await publisher.close()
        if isinstance(bus, JetStreamBus):
            try:
                await bus.delete_stream()
            finally:
                await bus.close()
    return {"orders": sent, "cpu_us_per_order": cpu * 1e6 / sent,
            "main_us_per_order": thread * 1e6 / sent, "orders_per_s": sent / wall}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=12_800)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--bus", default="memory")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", default="")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="perpx-writer-cpu-") as tmp:
        for i in range(args.runs):
            results.append(run(_writer(Path(tmp) / f"r{i}", args.bus, args.clients,
                                       args.connections, args.orders, None)))
        if args.profile:
            profile = cProfile.Profile(time.thread_time)  # CPU, not waits for the GIL
            run(_writer(Path(tmp) / "profiled", args.bus, args.clients, args.connections,
                        args.orders, profile))
            profile.dump_stats(args.profile)
    print(json.dumps({
        "bus": args.bus, "orders": results[0]["orders"], "clients": args.clients,
        "connections": args.connections,
        "cpu_us_per_order_min": round(min(r["cpu_us_per_order"] for r in results), 1),
        "cpu_us_per_order": [round(r["cpu_us_per_order"], 1) for r in results],
        "main_us_per_order_min": round(min(r["main_us_per_order"] for r in results), 1),
        "orders_per_s": [round(r["orders_per_s"]) for r in results]}))


if __name__ == "__main__":
    main()
