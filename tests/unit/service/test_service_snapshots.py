"""The service snapshots its engine and read side, and restarts from them as a full replay would.

Each test trades through a live `ExchangeService` (market makers, index feed, crossing
orders) with a small snapshot interval, closes it, then starts it again and holds it to a
full replay of the same journal: the same state hash and the same read side, object by object.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from perpx.core.commands import PlaceOrder
from perpx.core.enums import OrderType, Side
from perpx.instruments import load_instruments
from perpx.service import ExchangeService
from perpx.store import open_history, open_journal, open_snapshots
from perpx.store.history import History
from perpx.store.history_sqlite import SqliteHistory
from support.readside import read_side_differences
from support.stores import history_rows, history_sql


def _trade(location: str, data: Path, steps: int = 25, every: int = 40) -> list[int]:
    """Run a service with snapshots every `every` commands; return the stored snapshot seqs."""
    async def run() -> list[int]:
        service = ExchangeService(load_instruments(), open_journal(location),
                                  history=open_history(location),
                                  snapshots=open_snapshots(location), snapshot_every=every,
                                  feed_interval_s=3600)
        await service.start()
        await service.ensure_funded(5001, "100000")
        snapshotter = service.snapshotter
        assert snapshotter is not None
        # A trigger while a snapshot is still being stored starts none (the next one after it
        # does), so how many the first `steps` store depends on the machine's speed: trade on
        # (up to 8 times as long) until three are stored, for the tests that need several.
        step = 0
        while step < steps or (step < 8 * steps
                               and sum(not r.error for r in snapshotter.results) < 3):
            await service.step()
            side = Side.BUY if step % 2 else Side.SELL
            await service.submit(PlaceOrder(0, 0, 5001, "BTCUSDT", side, OrderType.MARKET,
                                            1 + step % 5))
            step += 1
        await service.close()
        return [r.seq for r in snapshotter.results if not r.error]

    return asyncio.run(run())


def _start(location: str, history: History, snapshots: bool = True) -> ExchangeService:
    # A reference replay beside the service under test reads the journal without fencing
    # it (a second writer of a PostgreSQL journal is refused).
    journal = open_journal(location, readonly=not snapshots)
    return ExchangeService(load_instruments(), journal, history=history,
                           maker=False, snapshots=open_snapshots(location) if snapshots
                           else None)


def test_restart_from_a_snapshot_equals_a_full_replay(location: str, tmp_path: Path) -> None:
    stored = _trade(location, tmp_path)
    full = _start(location, SqliteHistory(None), snapshots=False)
    again = _start(location, open_history(location))
    assert len(stored) >= 3
    assert again.recovery.snapshot_seq > 0 and again.recovery.rejected == []
    assert again.recovery.replayed == full.engine.last_seq - again.recovery.snapshot_seq
    assert again.engine.state_hash() == full.engine.state_hash()
    assert read_side_differences(again, full) == []
    assert history_rows(again.history) == history_rows(full.history)


def test_history_behind_the_newest_snapshot_starts_from_an_older_one(location: str,
                                                                   tmp_path: Path) -> None:
    _trade(location, tmp_path)
    store = open_snapshots(location)
    seqs = [h.seq for h in store.headers()]
    store.close()
    # The history tables were written up to just below the newest snapshot (a crash lost
    # their last batches): that snapshot would leave a gap, the one before it does not.
    history_sql(location, "UPDATE history_meta SET value = ? WHERE key = 'seq'",
                (seqs[0] - 1,))
    again = _start(location, open_history(location))
    full = _start(location, SqliteHistory(None), snapshots=False)
    assert again.recovery.snapshot_seq == seqs[1]
    assert "ahead of the history tables" in again.recovery.rejected[0]
    assert again.engine.state_hash() == full.engine.state_hash()
    assert read_side_differences(again, full) == []
    assert history_rows(again.history) == history_rows(full.history)
    assert again.history.high_watermark == full.history.high_watermark


def test_a_read_side_written_by_other_code_is_not_used(location: str, tmp_path: Path) -> None:
    _trade(location, tmp_path, steps=10)
    history_sql(location, "UPDATE read_side SET fingerprint = 'older code'")
    again = _start(location, open_history(location))
    full = _start(location, SqliteHistory(None), snapshots=False)
    assert again.recovery.snapshot_seq == 0
    assert all("written by other code" in r for r in again.recovery.rejected)
    assert again.engine.state_hash() == full.engine.state_hash()
    assert read_side_differences(again, full) == []
    assert history_rows(again.history) == history_rows(full.history)


def test_a_snapshot_taken_under_load_folds_in_the_commands_in_flight(tmp_path: Path) -> None:
    location = str(tmp_path / "journal.db")

    async def run() -> None:
        service = ExchangeService(load_instruments(), open_journal(location),
                                  history=open_history(location),
                                  snapshots=open_snapshots(location), snapshot_every=7,
                                  feed_interval_s=3600)
        await service.start()
        await service.ensure_funded(5001, "100000")
        # Many commands in flight at once: each snapshot forks with some still unjournaled.
        orders = [PlaceOrder(0, 0, 5001, "BTCUSDT", Side.BUY if i % 2 else Side.SELL,
                             OrderType.MARKET, 1) for i in range(300)]
        await asyncio.gather(*(service.submit(order) for order in orders))
        await service.close()

    asyncio.run(run())
    store = open_snapshots(location)
    seqs = [h.seq for h in store.headers()]
    store.close()
    checkpoints = [row[0] for row in history_sql(location, "SELECT seq FROM read_side")]
    assert seqs and set(seqs) <= set(checkpoints)
    again = _start(location, open_history(location))
    full = _start(location, SqliteHistory(None), snapshots=False)
    assert again.recovery.snapshot_seq == seqs[0]
    assert read_side_differences(again, full) == []
    assert history_rows(again.history) == history_rows(full.history)


def test_bench_restart_runs_end_to_end() -> None:
    from perpx.bench.restart import bench_restart

    lines: list[str] = []
    figures = bench_restart(commands=600, tail=50, echo=lines.append)
    assert figures["same_state_hash"] and figures["snapshot_seq"] == 600
    assert figures["commands"] == 650 and figures["speedup"] > 0
    assert lines[-1].startswith("{")
