"""`perpx bench restart`: how long `perpx serve` takes to come back, full replay vs snapshot.

Measured in one process on a SQLite journal of `commands` commands of the crash tests' order
flow (deposits, limit orders of which about a third cross, cancels, market orders, index
prices): the service is built (engine, history tables, read models, streams) as `perpx serve`
builds it,

- ``first_start``: from nothing but the journal, writing every history row (a new data folder);
- ``full_replay``: the baseline, a restart that replays the whole journal (history current);
- ``snapshot``: a restart from a snapshot (engine + read side) plus a tail of `tail` commands
  journaled after it, as a server that crashed a while after its last snapshot;
- ``resend_from_snapshot_s``: what a writer pays to answer a resend of the last command by
  replay (`replay_outcomes`: the snapshot before it, then the `tail` commands), as for a
  command journaled `tail` commands after a snapshot and at or before the one the next
  writer started from; ``resend_from_empty_s``: the same for the command at the snapshot's
  seq, which has no snapshot before it (a replay of `commands` commands from nothing).

Ends with one JSON line; ``speedup`` is full_replay / snapshot.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from perpx.core.commands import Command
from perpx.instruments import load_instruments
from perpx.service import ExchangeService
from perpx.store import open_journal, open_snapshots
from perpx.store.history_sqlite import SqliteHistory
from perpx.store.loadflow import order_flow
from perpx.store.recovery import replay_outcomes


def _journal(location: str, commands: list[Command], first_seq: int, first_ms: int) -> None:
    journal = open_journal(location)
    stamped = [msgspec.structs.replace(c, seq=first_seq + i, ts_ms=first_ms + i)
               for i, c in enumerate(commands)]
    for start in range(0, len(stamped), 4096):
        journal.append(stamped[start:start + 4096])
    journal.close()


def _start(location: str, data: Path, snapshots: bool) -> tuple[ExchangeService, float]:
    started = time.perf_counter()
    service = ExchangeService(load_instruments(), open_journal(location),
                              history=SqliteHistory(data / "history.db"), maker=False,
                              snapshots=open_snapshots(location) if snapshots else None,
                              snapshot_every=10**12 if snapshots else 0)
    return service, time.perf_counter() - started


def _stop(service: ExchangeService) -> None:
    asyncio.run(service.close())


def bench_restart(commands: int, tail: int, echo: Callable[[str], None]) -> dict[str, Any]:
    """Build the journal, snapshot once, then time each kind of start; return the figures."""
    with tempfile.TemporaryDirectory(prefix="perpx-bench-restart-") as folder:
        data = Path(folder)
        location = str(data / "journal.db")
        start_ms = 1_700_000_000_000
        _journal(location, list(order_flow(commands, seed=3)), 1, start_ms)
        echo(f"journal: {commands:,} commands")
        service, first = _start(location, data, snapshots=True)
        echo(f"first start (every history row written): {first:.2f} s")
        snapshotter = service.snapshotter
        if snapshotter is None:
            raise RuntimeError("snapshots need os.fork")
        snapshotter.start()
        result = snapshotter.wait()
        if result is None or result.error:
            raise RuntimeError(f"snapshot failed: {result}")
        found = service.history.load_checkpoint(result.seq)
        read_side = len(found[1]) if found is not None else 0
        _stop(service)
        echo(f"snapshot at seq {result.seq:,}: {result.nbytes:,} bytes, writer paused "
             f"{result.pause_s * 1000:.1f} ms")
        _journal(location, list(order_flow(tail, seed=4, start=commands)), commands + 1,
                 start_ms + commands)
        service, from_snapshot = _start(location, data, snapshots=True)
        used = service.recovery.snapshot_seq
        state = service.engine.state_hash()
        _stop(service)
        service, full = _start(location, data, snapshots=False)
        same = service.engine.state_hash() == state
        _stop(service)
        journal, store = open_journal(location, readonly=True), open_snapshots(location)
        try:
            last = journal.last_seq()
            late = replay_outcomes(load_instruments(), journal, store, last)
            early = replay_outcomes(load_instruments(), journal, store, used)
        finally:
            journal.close()
            store.close()
    echo(f"restart, full replay of {commands + tail:,} commands: {full:.2f} s (baseline)")
    echo(f"restart, snapshot at {used:,} + {tail:,} commands: {from_snapshot:.2f} s "
         f"= {full / from_snapshot:.1f}x faster; same state hash: {same}")
    echo(f"a resend's outcome by replay: seq {last:,} from snapshot {late.start_seq:,} "
         f"({late.replayed:,} commands) {late.seconds:.3f} s; seq {used:,} from nothing "
         f"({early.replayed:,} commands) {early.seconds:.3f} s")
    figures: dict[str, Any] = {
        "bench": "restart", "commands": commands + tail, "tail": tail,
        "first_start_s": round(first, 3), "full_replay_s": round(full, 3),
        "snapshot_s": round(from_snapshot, 3), "speedup": round(full / from_snapshot, 2),
        "snapshot_seq": used, "snapshot_bytes": result.nbytes, "read_side_bytes": read_side,
        "same_state_hash": same, "resend_from_snapshot_s": round(late.seconds, 3),
        "resend_from_empty_s": round(early.seconds, 3),
    }
    echo(json.dumps(figures))
    return figures
