"""`perpx bench projector`: how fast a projector folds the bus into history tables.

A seeded order flow (deposits, crossing limit orders, cancels, market orders, prices; each
command 20 s after the last, so candles close and funding settles) is applied to an engine
first (not timed) and its events published, in batches of `max_batch` commands, on an
in-process bus and, when NATS answers, on a fresh JetStream stream (deleted afterwards).
Then, timed:

- ``fold``: the read side's fold alone (`readside.fold`, no rows written): the CPU bound;
- ``sqlite`` / ``jetstream_sqlite`` / ``postgres``: a `HistoryProjector` from seq 1 to the
  end, from the in-process bus or JetStream, into fresh tables (a temporary SQLite file,
  or a fresh PostgreSQL schema, dropped afterwards), rows and watermark committed per batch,
  with one read-side checkpoint at the end;
- ``checkpoint``: the size and time of that checkpoint.

Rates are commands, events and history rows per second. Rough: one process, a machine
shared with other work. Ends with one JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from perpx import readside
from perpx.bus import Durable, EventBatch, EventBus, InProcessBus, JetStreamBus
from perpx.core.engine import Engine
from perpx.instruments import load_instruments
from perpx.roles.projector import HistoryProjector, project
from perpx.store import open_history
from perpx.store.history import History
from perpx.store.history_sql import SqlHistory
from perpx.store.history_sqlite import SqliteHistory
from perpx.store.loadflow import order_flow

STEP_MS = 20_000
TABLES = ("orders", "executions", "closed_pnl", "ledger", "klines", "funding")


def entries(commands: int, seed: int = 5) -> list[Durable]:
    """Return each command's seq, time and events, as the writer publishes them."""
    engine = Engine(load_instruments())
    out: list[Durable] = []
    for seq, command in enumerate(order_flow(commands, seed), start=1):
        stamped = msgspec.structs.replace(command, seq=seq,
                                          ts_ms=1_700_000_000_000 + seq * STEP_MS)
        out.append(Durable(seq, stamped.ts_ms, engine.apply(stamped)))
    return out


async def fill(bus: EventBus, flow: list[Durable], max_batch: int) -> None:
    """Publish `flow` on `bus` as the writer would, `max_batch` commands a message."""
    for start in range(0, len(flow), max_batch):
        await bus.publish(EventBatch.of(flow[start:start + max_batch]))


async def rows(history: History) -> int:
    """Every row of the history tables (counted on their writer thread, after the rows)."""
    if not isinstance(history, SqlHistory):
        return 0
    tables: SqlHistory = history

    def count() -> int:
        return sum(int(tables._execute(f"SELECT count(*) FROM {table}")[0][0])
                   for table in TABLES)

    return await tables.run(count)


def fold_only(flow: list[Durable]) -> dict[str, Any]:
    """Time the fold with no sink: what a projector costs before any database."""
    tables = SqliteHistory(None)  # never written: the fold is given no sink
    owner = HistoryProjector(load_instruments(), tables, say=lambda _: None)
    started = time.perf_counter()
    for entry in flow:
        readside.fold(owner, entry, entry.events, None)
    seconds = time.perf_counter() - started
    tables.close()
    events = sum(len(entry.events) for entry in flow)
    return {"commands_per_s": round(len(flow) / seconds),
            "events_per_s": round(events / seconds)}


async def follow_into(bus: EventBus, history: History, last: int) -> dict[str, Any]:
    """Time a projector from seq 1 to `last`; its rates, and its final checkpoint's."""
    projector = HistoryProjector(load_instruments(), history, checkpoint_every=2**62,
                                 checkpoint_seconds=float("inf"), say=lambda _: None)
    started = time.perf_counter()
    await project(bus, projector, until=last)  # ends with a checkpoint, then commits
    seconds = time.perf_counter() - started
    capture_started = time.perf_counter()
    body = readside.capture(projector)
    capture_s = time.perf_counter() - capture_started
    written = await rows(history)
    return {"seconds": round(seconds, 2),
            "commands_per_s": round(projector.commands / seconds),
            "events_per_s": round(projector.events / seconds),
            "rows_per_s": round(written / seconds), "rows": written,
            "checkpoint_bytes": len(body), "checkpoint_capture_ms": round(capture_s * 1000, 1)}


def bench_projector(commands: int, nats: str, postgres: str = "", max_batch: int = 256,
                    echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the measures; print a line each and the JSON report last."""
    flow = entries(commands)
    last = flow[-1].seq
    report: dict[str, Any] = {
        "bench": "projector", "commands": commands,
        "events": sum(len(entry.events) for entry in flow), "max_batch": max_batch,
        "note": "rough: one process, a shared 2-core machine (other work running)"}
    report["fold"] = fold_only(flow)
    echo(f"fold only:        {report['fold']['events_per_s']:,} events/s "
         f"({report['fold']['commands_per_s']:,} commands/s)")

    def say(name: str) -> None:
        found = report[name]
        if "error" in found:
            echo(f"{name}: not measured ({found['error']})")
            return
        echo(f"{name + ':':17} {found['events_per_s']:,} events/s, "
             f"{found['commands_per_s']:,} commands/s, {found['rows_per_s']:,} rows/s "
             f"({found['rows']:,} rows; checkpoint {found['checkpoint_bytes']:,} bytes in "
             f"{found['checkpoint_capture_ms']} ms)")

    async def run() -> None:
        with tempfile.TemporaryDirectory() as folder:
            memory = InProcessBus()
            await fill(memory, flow, max_batch)
            history = open_history(str(Path(folder) / "a.db"), beside_journal=False)
            try:
                report["sqlite"] = await follow_into(memory, history, last)
            finally:
                history.close()
            say("sqlite")
            jetstream = JetStreamBus(nats, f"PERPX_BENCH_{uuid.uuid4().hex[:10].upper()}")
            history = open_history(str(Path(folder) / "b.db"), beside_journal=False)
            try:
                await fill(jetstream, flow, max_batch)
                report["jetstream_sqlite"] = await follow_into(jetstream, history, last)
            except Exception as failure:  # NATS absent: keep the other figures
                report["jetstream_sqlite"] = {"error": repr(failure)}
            finally:
                history.close()
                with contextlib.suppress(Exception):
                    await jetstream.delete_stream()
                await jetstream.close()
            say("jetstream_sqlite")
        if postgres:
            await run_postgres(memory)

    async def run_postgres(bus: EventBus) -> None:
        schema = f"perpx_bench_{uuid.uuid4().hex[:10]}"
        try:
            history = open_history(f"{postgres}?schema={schema}", beside_journal=False)
        except Exception as failure:
            report["postgres"] = {"error": repr(failure)}
            say("postgres")
            return
        try:
            report["postgres"] = await follow_into(bus, history, last)
        finally:
            history.close()
            import psycopg
            from psycopg import sql

            with psycopg.connect(postgres, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(schema)))
        say("postgres")

    asyncio.run(run())
    echo(json.dumps(report))
    return report
