"""The writer's window of recent request ids (issue #15): a resent command is applied once.

The sequencer answers a request id it holds with the first answer (its own future while in
flight, its events once durable); a restart or takeover fills the window from the journal's
tail, so a gateway's resend after a kill is answered, not applied twice. The core never sees
the ids: the journaled commands are the same with and without them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from perpx.core import Engine, OrderType, PlaceOrder, Side
from perpx.core.commands import Deposit
from perpx.instruments import load_instruments
from perpx.sequencer import Sequencer
from perpx.service import ExchangeService
from perpx.store import open_history, open_journal, open_snapshots
from perpx.store.journal import MemoryJournal, OutcomeNotKept, new_request_id
from support.builders import btcusdt


def _order(account: int, price: int) -> PlaceOrder:
    return PlaceOrder(0, 0, account, "BTCUSDT", Side.BUY, OrderType.LIMIT, 1, price)


def _funded() -> Sequencer:
    return Sequencer(Engine([btcusdt()]), MemoryJournal())


def test_a_resent_request_id_is_answered_once_with_the_same_events() -> None:
    async def run() -> None:
        seq = _funded()
        await seq.submit(Deposit(0, 0, 1, "USDT", 10**12))
        rid = new_request_id()
        # The resend arrives while the first is still in flight: the same future answers.
        first = seq.submit_nowait(_order(1, 650_000), rid)
        again = seq.submit_nowait(_order(1, 650_000), rid)
        assert again is first
        events = await first
        # Once durable: answered from the window, nothing applied.
        assert await seq.submit(_order(1, 650_000), rid) == events
        assert seq.engine.last_seq == 2 and seq.journal.last_seq() == 2
        assert seq.resent == 2
        assert seq.recorded(rid) == 2
        # Without an id, or with another, a command is a new command.
        await seq.submit(_order(1, 650_000))
        await seq.submit(_order(1, 650_000), new_request_id())
        assert seq.journal.last_seq() == 4
        assert seq.journal.request_ids() == [(2, rid), (4, seq.journal.request_ids()[1][1])]

    asyncio.run(run())


def test_the_window_forgets_the_oldest_ids() -> None:
    async def run() -> None:
        seq = Sequencer(Engine([btcusdt()]), MemoryJournal(), window=2)
        rids = [new_request_id() for _ in range(3)]
        for rid in rids:
            await seq.submit(Deposit(0, 0, 1, "USDT", 1), rid)
        assert seq.recorded(rids[0]) is None
        assert [seq.recorded(rid) for rid in rids[1:]] == [2, 3]
        seq.remember(new_request_id(), 3, [])
        assert seq.recorded(rids[1]) is None  # `remember` is bounded by the same window

    asyncio.run(run())


def test_a_remembered_id_without_events_is_reported_not_applied() -> None:
    async def run() -> None:
        seq = _funded()
        rid = new_request_id()
        seq.remember(rid, 1, None)
        with pytest.raises(OutcomeNotKept, match="seq 1"):
            await seq.submit(Deposit(0, 0, 1, "USDT", 1), rid)
        assert seq.engine.last_seq == 0

    asyncio.run(run())


def test_a_restart_answers_a_journaled_request_id_from_the_journal(tmp_path: Path) -> None:
    location = str(tmp_path / "journal.db")
    specs = load_instruments()
    rid, other = new_request_id(), new_request_id()
    first: list[list[object]] = []

    async def before() -> None:
        service = ExchangeService(specs, open_journal(location), maker=False,
                                  history=open_history(location),
                                  snapshots=open_snapshots(location), snapshot_every=3)
        await service.ensure_funded(9001, "100000")
        first.append(list(await service.submit(_order(9001, 600_000_000), rid)))
        # Two more, so that the snapshot lands past `other` but before the end.
        first.append(list(await service.submit(_order(9001, 600_000_001), other)))
        assert service.snapshotter is not None
        await asyncio.to_thread(service.snapshotter.wait, 30.0)
        await service.submit(Deposit(0, 0, 9001, "USDT", 1))
        await service.close()

    async def after() -> None:
        service = ExchangeService(specs, open_journal(location), maker=False,
                                  history=open_history(location),
                                  snapshots=open_snapshots(location))
        end = service.engine.last_seq
        snapshot = service.recovery.snapshot_seq
        assert 0 < snapshot < end
        recorded = service.sequencer.recorded(rid)
        assert recorded is not None and recorded <= snapshot
        # Journaled before the snapshot the restart began from: applied once, events gone.
        with pytest.raises(OutcomeNotKept):
            await service.submit(_order(9001, 600_000_000), rid)
        assert service.engine.last_seq == end
        await service.close()

    asyncio.run(before())
    asyncio.run(after())
    # Without the snapshot, the whole journal is the tail: the events come back exactly.

    async def replayed() -> None:
        service = ExchangeService(specs, open_journal(location), maker=False)
        end = service.engine.last_seq
        assert list(await service.submit(_order(9001, 600_000_000), rid)) == first[0]
        assert list(await service.submit(_order(9001, 600_000_001), other)) == first[1]
        assert service.engine.last_seq == end and service.sequencer.resent == 2
        await service.close()

    asyncio.run(replayed())
