"""A restart from a snapshot taken after a listing keeps the listed contract (issue #16).

The read-side checkpoint of such a snapshot was folded with the listed contract as well as
the configured table; before, a service started on the table alone refused it and replayed
the whole journal. Now the contracts the engine snapshot listed are learnt from it: the
restart starts from the snapshot, the service's symbols include the contract, and its read
side equals a full replay's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from perpx.core.commands import IndexPrice, ListInstrument, PlaceOrder
from perpx.core.enums import OrderType, Side
from perpx.core.events import InstrumentListed
from perpx.core.instruments import spec_record
from perpx.instruments import FUTURES_TABLE, load_instruments
from perpx.service import ExchangeService
from perpx.store import open_history, open_journal, open_snapshots
from perpx.store.history_sqlite import SqliteHistory
from support.readside import read_side_differences

SPECS = load_instruments()
FUTURE = load_instruments(FUTURES_TABLE)[0]  # BTCUSDT-25DEC26
START_MS = FUTURE.delivery_time_ms - 10 * 86_400_000


def test_a_restart_from_a_snapshot_after_a_listing_keeps_the_contract_without_a_replay(
        tmp_path: Path) -> None:
    location = str(tmp_path / "journal.db")
    listed_at: list[int] = []

    async def run() -> None:
        service = ExchangeService(SPECS, open_journal(location), history=open_history(location),
                                  snapshots=open_snapshots(location), snapshot_every=5,
                                  clock=lambda: START_MS, maker=False, feed_interval_s=3600)
        await service.start()
        events = await service.submit(ListInstrument(0, 0, spec_record(FUTURE)))
        assert [type(e) for e in events] == [InstrumentListed]
        listed_at.append(service.read_seq)
        await service.ensure_funded(5001, "100000")
        await service.ensure_funded(5002, "100000")
        await service.submit(IndexPrice(0, 0, FUTURE.symbol, 600_000))
        for step in range(8):
            await service.submit(PlaceOrder(0, 0, 5001 + step % 2, FUTURE.symbol,
                                            Side.SELL if step % 2 else Side.BUY,
                                            OrderType.LIMIT, 10, 600_000 + step))
            assert service.snapshotter is not None
            await asyncio.to_thread(service.snapshotter.wait, 30.0)
        await service.close()

    asyncio.run(run())
    again = ExchangeService(SPECS, open_journal(location), history=open_history(location),
                            maker=False, snapshots=open_snapshots(location))
    full = ExchangeService(SPECS, open_journal(location, readonly=True),
                           history=SqliteHistory(None), maker=False)
    # From the newest snapshot (after the listing), not from the start of the journal.
    assert again.recovery.snapshot_seq > listed_at[0]
    assert not again.recovery.rejected
    assert again.recovery.replayed < again.engine.last_seq - listed_at[0]
    assert again.specs[FUTURE.symbol] == FUTURE
    assert list(again.specs) == list(full.specs)
    assert again.engine.state_hash() == full.engine.state_hash()
    assert read_side_differences(again, full) == []
