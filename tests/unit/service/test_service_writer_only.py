"""The writer only (`read_side=False`, issue #15 item 1): it folds and writes no read side.

It trades, snapshots and restarts as the whole service does, but its history tables take no
row, its snapshots carry no read side, and its restart uses the newest sound snapshot
without asking any history; the state equals a full replay's. The whole service started
later on the same journal passes those snapshots over and rebuilds its read side and history
from the journal, as a full replay would.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from perpx.core.commands import PlaceOrder
from perpx.core.enums import OrderType, Side
from perpx.instruments import load_instruments
from perpx.service import ExchangeService
from perpx.store import open_history, open_journal, open_snapshots
from perpx.store.history_sqlite import SqliteHistory
from support.readside import read_side_differences
from support.stores import history_rows


def _writer(location: str, history: Path) -> ExchangeService:
    return ExchangeService(load_instruments(), open_journal(location), maker=False,
                           history=SqliteHistory(history),
                           snapshots=open_snapshots(location), snapshot_every=40,
                           feed_interval_s=3600, read_side=False)


def _trade(service: ExchangeService, steps: int = 25) -> None:
    async def run() -> None:
        await service.start()
        await service.ensure_funded(5001, "100000")
        await service.ensure_funded(5002, "100000")
        for step in range(steps):
            await service.step()
            side = Side.BUY if step % 2 else Side.SELL
            await service.submit(PlaceOrder(0, 0, 5001, "BTCUSDT", side, OrderType.LIMIT,
                                            1 + step % 5, price_ticks=650_000))
            await service.submit(PlaceOrder(0, 0, 5002, "BTCUSDT", side.opposite,
                                            OrderType.MARKET, 1 + step % 5))
            # A trigger that comes while a snapshot is in flight is passed over
            # (`Snapshotter.start`); on a loaded machine one snapshot could outlast the run.
            # Waiting here makes every trigger take its snapshot, whatever the load.
            while service.snapshotter is not None and service.snapshotter.busy:
                await asyncio.sleep(0.005)
        await service.settled()
        await service.close()

    asyncio.run(run())


def test_the_writer_only_writes_no_history_and_restarts_from_its_snapshots(
        location: str, tmp_path: Path) -> None:
    given = tmp_path / "writer-history.db"  # handed to the writer, which never writes it
    writer = _writer(location, given)
    _trade(writer)
    assert writer.snapshotter is not None
    stored = [r.seq for r in writer.snapshotter.results if not r.error]
    assert len(stored) >= 3
    assert writer.read_seq == 0  # nothing folded
    untouched = SqliteHistory(given)
    try:
        assert untouched.high_watermark == 0
        assert all(not rows for rows in history_rows(untouched).values())
    finally:
        untouched.close()

    again = _writer(location, given)
    full = ExchangeService(load_instruments(), open_journal(location, readonly=True),
                           history=SqliteHistory(None), maker=False)
    try:
        assert again.recovery.snapshot_seq == stored[-1] and again.recovery.rejected == []
        assert again.engine.state_hash() == full.engine.state_hash()
        # The whole service on that journal: the snapshots have no read side, so it replays.
        whole = ExchangeService(load_instruments(), open_journal(location, readonly=True),
                                history=open_history(location), maker=False,
                                snapshots=open_snapshots(location))
        try:
            assert whole.recovery.snapshot_seq == 0
            assert whole.recovery.rejected
            assert read_side_differences(whole, full) == []
            assert history_rows(whole.history) == history_rows(full.history)
        finally:
            whole.history.close()
    finally:
        again.history.close()
        full.history.close()
