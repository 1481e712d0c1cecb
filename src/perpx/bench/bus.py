"""`perpx bench bus`: events per second through the event bus, published and consumed.

A seeded order flow is applied to an engine first (not timed), giving each command's events
as the writer would have them. Then, for the in-process bus and for JetStream (a fresh stream,
deleted afterwards):

- ``publish``: the writer's side: every command handed to a `BusPublisher` as the sequencer
  would (yielding to the loop every `chunk` commands, as group commits do), timed until the
  bus has acknowledged the last batch;
- ``consume``: one consumer reading the whole stream from seq 1, decoding every batch.

Figures are rough: one process, one client connection, a machine shared with other work.
Ends with one JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from perpx.bus import BusPublisher, EventBus, InProcessBus, JetStreamBus
from perpx.core.commands import Command
from perpx.core.engine import Engine
from perpx.core.events import Event
from perpx.instruments import load_instruments
from perpx.store.loadflow import order_flow


def flow(commands: int, seed: int = 5) -> list[tuple[Command, list[Event]]]:
    """Return stamped commands with the events an engine gave them."""
    engine = Engine(load_instruments())
    out: list[tuple[Command, list[Event]]] = []
    for seq, command in enumerate(order_flow(commands, seed), start=1):
        stamped = msgspec.structs.replace(command, seq=seq, ts_ms=1_700_000_000_000 + seq)
        out.append((stamped, engine.apply(stamped)))
    return out


async def measure(bus: EventBus, entries: list[tuple[Command, list[Event]]],
                  max_batch: int, chunk: int) -> dict[str, Any]:
    """Publish `entries` through a publisher on `bus`, then consume them all; the rates."""
    events = sum(len(e) for _, e in entries)
    publisher = BusPublisher(bus, max_batch=max_batch)
    started = time.perf_counter()
    for command, produced in entries:
        publisher.on_durable(command, produced)
        if command.seq % chunk == 0:
            await asyncio.sleep(0)
    if not await publisher.close(timeout_s=600):
        raise RuntimeError("the publisher did not finish")
    publish_s = time.perf_counter() - started
    last = entries[-1][0].seq
    started = time.perf_counter()
    consumed = 0
    async for batch in bus.subscribe(1):
        consumed += sum(len(entry.events) for entry in batch.entries)
        if batch.last_seq >= last:
            break
    consume_s = time.perf_counter() - started
    return {"publish_events_per_s": round(events / publish_s),
            "publish_commands_per_s": round(len(entries) / publish_s),
            "consume_events_per_s": round(consumed / consume_s),
            "batches": publisher.batches, "events_consumed": consumed}


def bench_bus(commands: int, nats: str, max_batch: int = 256, chunk: int = 512,
              echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run both buses; print a line each and the JSON report last."""
    entries = flow(commands)
    events = sum(len(e) for _, e in entries)
    report: dict[str, Any] = {"bench": "bus", "commands": commands, "events": events,
                              "max_batch": max_batch,
                              "note": "rough: one process, a shared 2-core machine"}

    async def run() -> None:
        report["inprocess"] = await measure(InProcessBus(), entries, max_batch, chunk)
        echo(f"in-process: {report['inprocess']['publish_events_per_s']:,} events/s "
             f"published, {report['inprocess']['consume_events_per_s']:,} consumed")
        bus = JetStreamBus(nats, f"PERPX_BENCH_{uuid.uuid4().hex[:10].upper()}")
        try:
            report["jetstream"] = await measure(bus, entries, max_batch, chunk)
            echo(f"jetstream:  {report['jetstream']['publish_events_per_s']:,} events/s "
                 f"published, {report['jetstream']['consume_events_per_s']:,} consumed "
                 f"({report['jetstream']['batches']} messages)")
        except Exception as failure:  # NATS absent: say so, keep the in-process figures
            report["jetstream"] = {"error": repr(failure)}
            echo(f"jetstream: not measured ({failure!r})")
        finally:
            with contextlib.suppress(Exception):
                await bus.delete_stream()
            await bus.close()

    asyncio.run(run())
    echo(json.dumps(report))
    return report
