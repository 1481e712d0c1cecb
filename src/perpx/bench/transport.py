"""`perpx bench transport`: PlaceOrder round trips to the writer, in process and over transports.

Each client sends limit IOC buys far below the market, one after another (the next once the
last is answered, i.e. durable); `clients` such clients run at once. Every order is accepted
and cancelled at once (nothing to match), so the book stays as it was and every round trip
costs the same. Three paths, each with 1 and 16 clients:

- ``inprocess``: `ExchangeService.submit` called in the writer's own process (the baseline);
- ``unix``: a writer process with the command endpoint on a Unix socket, clients in this
  process, one connection each (as gateway processes would have);
- ``nats``: the same writer answering NATS requests (skipped with the reason if no server).

Each path has its own writer over a fresh SQLite journal (group commit, fsync as
configured by the journal). Figures are rough: the 2-core machine is shared with other
work, and clients and writer compete for the same cores. Ends with one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from perpx.api.server import event_loop_factory
from perpx.convert import to_ticks
from perpx.core.commands import Command, Deposit, PlaceOrder
from perpx.core.enums import OrderType, Side, TimeInForce
from perpx.instruments import load_instruments
from perpx.service import ExchangeService, open_service_journal
from perpx.transport import CommandEndpoint, NatsWriterClient, UnixWriterClient

ACCOUNT_BASE = 50_000
CONCURRENCY = (1, 16)
Submit = Callable[[Command], Awaitable[Any]]


def _order(account: int, price_ticks: int) -> PlaceOrder:
    return PlaceOrder(0, 0, account, "BTCUSDT", Side.BUY, OrderType.LIMIT, 1, price_ticks,
                      time_in_force=TimeInForce.IOC)


def _price_ticks() -> int:
    spec = next(s for s in load_instruments() if s.symbol == "BTCUSDT")
    return to_ticks(spec, "1000")  # far below any ask: accepted, then cancelled (IOC)


async def _fund(submit: Submit, clients: int) -> None:
    for i in range(clients):
        await submit(Deposit(0, 0, ACCOUNT_BASE + i, "USDT", 10**8 * 1_000_000))


async def _load(submits: list[Submit], commands: int) -> dict[str, Any]:
    """`commands` round trips spread over one task per submit; the rate and latencies."""
    price = _price_ticks()
    per_client = max(1, commands // len(submits))
    latencies: list[float] = []

    async def client(number: int, submit: Submit) -> None:
        order = _order(ACCOUNT_BASE + number, price)
        for _ in range(per_client):
            started = time.perf_counter()
            await submit(order)
            latencies.append(time.perf_counter() - started)

    for warm in range(min(50, per_client)):  # connections, caches, the journal's first pages
        del warm
        await asyncio.gather(*(s(_order(ACCOUNT_BASE + n, price))
                               for n, s in enumerate(submits)))
    started = time.perf_counter()
    await asyncio.gather(*(client(n, s) for n, s in enumerate(submits)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {"clients": len(submits), "round_trips": len(latencies),
            "per_s": round(len(latencies) / wall),
            "p50_ms": round(statistics.median(latencies) * 1000, 3),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3)}


def _writer_main(data: str, socket_path: str, nats_url: str, venue: str,
                 ready: Any) -> None:
    """Run a writer process: a service with the command endpoint(s), until terminated."""

    async def main() -> None:
        service = ExchangeService(load_instruments(), open_service_journal(data), maker=False)
        endpoint = CommandEndpoint(service.submit, service.stopped.is_set)
        if socket_path:
            await endpoint.start_unix(socket_path)
        if nats_url:
            try:
                await endpoint.start_nats(nats_url, venue)
            except Exception as failure:
                ready.put(f"error: {failure!r}")
                return
        ready.put("ready")
        await asyncio.Event().wait()

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(main())


async def _inprocess(folder: Path, commands: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for clients in CONCURRENCY:
        service = ExchangeService(load_instruments(), open_service_journal(folder / f"in{clients}"),
                                  maker=False)
        await _fund(service.submit, clients)
        out[str(clients)] = await _load([service.submit] * clients, commands)
        await service.close()
    return out


async def _drive(kind: str, clients: int, socket_path: str, nats_url: str, venue: str,
                 commands: int) -> dict[str, Any]:
    made: list[UnixWriterClient | NatsWriterClient] = [
        UnixWriterClient(socket_path, timeout_s=30) if kind == "unix"
        else NatsWriterClient(nats_url, venue, timeout_s=30)
        for _ in range(clients)]
    try:
        await _fund(made[0].submit, clients)
        return await _load([c.submit for c in made], commands)
    finally:
        for client in made:
            await client.close()


def _remote(folder: Path, commands: int, kind: str, nats_url: str) -> dict[str, Any]:
    """Run a writer process per concurrency and load it over `kind` from here."""
    out: dict[str, Any] = {}
    context = multiprocessing.get_context("spawn")
    for clients in CONCURRENCY:
        socket_path = str(folder / f"{kind}{clients}.sock") if kind == "unix" else ""
        venue = f"BENCH{uuid.uuid4().hex[:8].upper()}"
        ready = context.Queue()
        writer = context.Process(target=_writer_main, daemon=True, args=(
            str(folder / f"{kind}{clients}"), socket_path,
            nats_url if kind == "nats" else "", venue, ready))
        writer.start()
        try:
            said = ready.get(timeout=60)
            if said != "ready":
                return {"error": said}

            with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                out[str(clients)] = runner.run(_drive(kind, clients, socket_path, nats_url, venue,
                                                    commands))
        finally:
            writer.terminate()
            writer.join(10)
    return out


def bench_transport(commands: int = 4000, nats: str = "nats://127.0.0.1:4222",
                    echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure the three paths; print a line each and the JSON report last."""
    report: dict[str, Any] = {
        "bench": "transport", "commands": commands, "order": "limit IOC buy, never fills",
        "journal": "SQLite",
        "note": "rough: a shared 2-core machine; clients and writer share its cores"}
    with tempfile.TemporaryDirectory(prefix="perpx-bench-transport-") as tmp:
        folder = Path(tmp)
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            report["inprocess"] = runner.run(_inprocess(folder, commands))
        report["unix"] = _remote(folder, commands, "unix", nats)
        try:
            report["nats"] = _remote(folder, commands, "nats", nats)
        except Exception as failure:  # no NATS server: keep the other figures
            report["nats"] = {"error": repr(failure)}
    base = report["inprocess"]
    report["ratio_to_inprocess"] = {
        kind: {clients: round(figures["per_s"] / base[clients]["per_s"], 2)
               for clients, figures in report[kind].items() if "per_s" in figures}
        for kind in ("unix", "nats") if "error" not in report[kind]}
    for kind in ("inprocess", "unix", "nats"):
        if "error" in report[kind]:
            echo(f"{kind}: not measured ({report[kind]['error']})")
            continue
        for clients, figures in report[kind].items():
            echo(f"{kind:9} {clients:>2} clients: {figures['per_s']:>6,}/s  p50 "
                 f"{figures['p50_ms']:.2f} ms  p99 {figures['p99_ms']:.2f} ms")
    echo(json.dumps(report))
    return report
