"""The writer's window of recent request ids (issue #15): a resent command is applied once.

The sequencer answers a request id it holds with the first answer (its own future while in
flight, its events once durable); a restart or takeover fills the window from the journal's
tail, so a gateway's resend after a kill is answered, not applied twice. The core never sees
the ids: the journaled commands are the same with and without them.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from perpx.core import Engine, OrderType, PlaceOrder, Side
from perpx.core.commands import Deposit
from perpx.core.events import OrderAccepted
from perpx.instruments import load_instruments
from perpx.sequencer import Sequencer
from perpx.service import ExchangeService
from perpx.store import open_history, open_journal, open_snapshots
from perpx.store.journal import MemoryJournal, OutcomeNotKept, new_request_id
from perpx.store.recovery import replay_outcomes
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
        # Journaled before the snapshot the restart began from: its events are recomputed by
        # replay (no snapshot before it: from an empty engine), exactly, and nothing applied.
        assert list(await service.submit(_order(9001, 600_000_000), rid)) == first[0]
        assert service.sequencer.recomputed == 1
        # The same replay passed `other` (journaled after `rid`): answered from the window.
        assert list(await service.submit(_order(9001, 600_000_001), other)) == first[1]
        assert list(await service.submit(_order(9001, 600_000_000), rid)) == first[0]
        assert service.sequencer.recomputed == 1 and service.sequencer.resent == 3
        assert service.engine.last_seq == end and service.sequencer.journal.last_seq() == end
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


def test_a_resend_between_two_snapshots_is_replayed_from_the_older_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Snapshots at S1 < seq <= S2, the restart from S2: the events of the command at seq
    are recomputed from S1 (not from the start), once for every resend that comes at the
    same moment, and are the first answer's exactly."""
    location = str(tmp_path / "journal.db")
    specs = load_instruments()
    rids = [new_request_id() for _ in range(3)]
    first: dict[bytes, list[object]] = {}
    seqs: dict[bytes, int] = {}
    snapped: list[int] = []

    async def before() -> None:
        service = ExchangeService(specs, open_journal(location), maker=False,
                                  history=open_history(location),
                                  snapshots=open_snapshots(location), snapshot_every=3)
        assert service.snapshotter is not None
        await service.ensure_funded(9001, "100000")
        await service.submit(_order(9001, 600_000))
        await service.submit(_order(9001, 600_001))  # seq 3: the first snapshot
        snapped.append((await asyncio.to_thread(service.snapshotter.wait, 30.0)).seq)
        for number, rid in enumerate(rids):  # seqs 4, 5, 6: the second snapshot
            events = await service.submit(_order(9001, 600_010 + number), rid)
            first[rid], seqs[rid] = list(events), events[0].seq
            assert isinstance(events[0], OrderAccepted)
        snapped.append((await asyncio.to_thread(service.snapshotter.wait, 30.0)).seq)
        await service.submit(Deposit(0, 0, 9001, "USDT", 1))  # seq 7, past the snapshot
        await service.close()

    asyncio.run(before())
    s1, s2 = snapped
    assert s1 < min(seqs.values()) and max(seqs.values()) <= s2

    async def after() -> None:
        service = ExchangeService(specs, open_journal(location), maker=False,
                                  history=open_history(location),
                                  snapshots=open_snapshots(location))
        end = service.engine.last_seq
        assert service.recovery.snapshot_seq == s2
        with caplog.at_level(logging.WARNING, logger="perpx.service"):
            answers = await asyncio.gather(*(
                service.submit(_order(9001, 0), rid) for rid in reversed(rids)))
        assert [list(events) for events in answers] == [first[rid] for rid in reversed(rids)]
        assert service.sequencer.recomputed == 1  # one replay answered all three
        assert f"from snapshot {s1} " in caplog.text
        assert service.engine.last_seq == end and service.sequencer.journal.last_seq() == end
        await service.close()

    asyncio.run(after())

    # The replay itself: from the newest snapshot strictly before the seq, or from nothing.
    journal = open_journal(location, readonly=True)
    snapshots = open_snapshots(location, readonly=True)
    try:
        seq = seqs[rids[0]]
        outcomes = replay_outcomes(specs, journal, snapshots, seq)
        assert outcomes.start_seq == s1 and outcomes.replayed == seq - s1
        assert list(outcomes.events[seq]) == first[rids[0]]
        whole = replay_outcomes(specs, journal, None, seq, [seqs[rids[2]]])
        assert whole.start_seq == 0 and whole.replayed == seqs[rids[2]]
        assert [list(whole.events[seqs[rid]]) for rid in (rids[0], rids[2])] == \
            [first[rids[0]], first[rids[2]]]
        with pytest.raises(ValueError, match="not all in the journal"):
            replay_outcomes(specs, journal, snapshots, journal.last_seq() + 1)
    finally:
        journal.close()
        snapshots.close()


def test_a_failed_replay_is_reported_as_not_kept_and_tried_again() -> None:
    async def run() -> None:
        calls: list[int] = []

        def recompute(seq: int, more: list[int]) -> dict[int, list[object]]:
            calls.append(seq)
            raise RuntimeError("journal gone")

        seq = Sequencer(Engine([btcusdt()]), MemoryJournal(),
                        recompute=recompute)  # type: ignore[arg-type]
        rid = new_request_id()
        seq.remember(rid, 1, None)
        for _ in range(2):
            with pytest.raises(OutcomeNotKept, match="seq 1"):
                await seq.submit(Deposit(0, 0, 1, "USDT", 1), rid)
        assert calls == [1, 1] and seq.engine.last_seq == 0 and seq.recomputed == 0

    asyncio.run(run())


def test_a_standby_hands_over_the_outcomes_it_followed(tmp_path: Path) -> None:
    """The hot standby applied every command it followed: the new writer's window gets their
    events from it, so a resend older than the snapshot the takeover's rebuild starts from
    needs no replay; without them (a plain restart) the writer replays, to the same answer."""
    from perpx.standby import Standby

    location = str(tmp_path / "journal.db")
    specs = load_instruments()
    rid = new_request_id()
    first: list[object] = []
    standby = Standby(specs, location, poll_s=0.01)

    async def leader() -> None:
        service = ExchangeService(specs, open_journal(location), maker=False,
                                  history=open_history(location),
                                  snapshots=open_snapshots(location), snapshot_every=3)
        await service.ensure_funded(9001, "100000")
        first.extend(await service.submit(_order(9001, 600_000), rid))
        assert isinstance(first[0], OrderAccepted)
        assert standby.follow() == 2  # the standby follows as the leader goes on
        await service.submit(_order(9001, 600_001))  # seq 3: a snapshot after `rid`
        assert service.snapshotter is not None
        await asyncio.to_thread(service.snapshotter.wait, 30.0)
        await service.close()  # the leader is gone: its lock is free

    asyncio.run(leader())
    takeover = standby.run()
    assert takeover is not None and takeover.engine.last_seq == 3
    # Every command from the API carries an id (the deposit and seq 3 too).
    kept = {r: (seq, list(events)) for r, seq, events in takeover.recorded}
    assert len(kept) == 3 and kept[rid] == (2, first)

    async def new_leader(recorded: bool) -> None:
        service = ExchangeService(specs, takeover.journal if recorded else open_journal(location),
                                  maker=False, history=open_history(location),
                                  snapshots=open_snapshots(location),
                                  recorded=takeover.recorded if recorded else ())
        assert service.recovery.snapshot_seq == 3  # `rid` (seq 2) is not in the tail
        assert list(await service.submit(_order(9001, 0), rid)) == first
        assert service.sequencer.recomputed == (0 if recorded else 1)
        assert service.engine.last_seq == 3 and service.sequencer.resent == 1
        await service.close()

    asyncio.run(new_leader(recorded=True))
    asyncio.run(new_leader(recorded=False))
