"""Snapshot stores, the Snapshotter (forked and inline) and recovery with fallback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from perpx.core.engine import Engine
from perpx.instruments import load_instruments
from perpx.sequencer import Sequencer
from perpx.store.codec import decode_snapshot, encode_snapshot
from perpx.store.journal import Journal
from perpx.store.loadflow import order_flow
from perpx.store.recovery import recover, recover_state
from perpx.store.snapshots import SnapshotStore
from perpx.store.snapshotter import Snapshotter


def _run_flow(journal: Journal, store: SnapshotStore, count: int, every: int,
              fork: bool = True) -> tuple[Engine, Snapshotter]:
    async def go() -> tuple[Engine, Snapshotter]:
        engine = Engine(load_instruments())
        sequencer = Sequencer(engine, journal)
        snapshotter = Snapshotter(engine, store, lambda: sequencer.durable_seq,
                                  every_commands=every, fork=fork)
        sequencer.subscribe(snapshotter)
        for command in order_flow(count, seed=3):
            sequencer.submit_nowait(command)
            if engine.last_seq % 50 == 0:
                await sequencer.drain()
                snapshotter.wait()
        await sequencer.drain()
        snapshotter.wait()
        return engine, snapshotter

    return asyncio.run(go())


def _full_replay(journal: Journal) -> Engine:
    engine = Engine(load_instruments())
    recover(engine, journal)
    return engine


def test_snapshot_store_chunks_round_trip_and_prune(
        snapshot_opener: Callable[..., SnapshotStore]) -> None:
    store = snapshot_opener(chunk_bytes=7)
    assert store.latest() is None
    bodies = {seq: bytes(range(seq % 256)) * 3 for seq in (10, 20, 30)}
    for seq, body in bodies.items():
        store.save(body, seq, f"h{seq}", ts_ms=seq * 1000)
    store.save(b"ignored: already stored", 30, "other")
    info, body = store.latest() or (None, b"")
    assert info is not None and (info.seq, info.state_hash, info.ts_ms) == (30, "h30", 30_000)
    assert body == bodies[30] and info.nbytes == len(body) and info.chunks == -(-len(body) // 7)
    assert [h.seq for h in store.headers()] == [30, 20, 10]
    store.prune(2)
    assert [h.seq for h in store.headers()] == [30, 20]
    assert store.load(10) == b"" and store.load(20) == bodies[20]
    store.close()
    reopened = snapshot_opener()
    assert [h.seq for h in reopened.headers()] == [30, 20]
    reopened.close()


@pytest.mark.parametrize("fork", [True, False], ids=["fork", "inline"])
def test_snapshotter_stores_exact_states_and_recovery_uses_the_newest(
        opener: Callable[[], Journal], snapshot_opener: Callable[..., SnapshotStore],
        fork: bool) -> None:
    journal, store = opener(), snapshot_opener(chunk_bytes=4096)
    engine, snapshotter = _run_flow(journal, store, 900, every=200, fork=fork)
    assert snapshotter.results and all(not r.error for r in snapshotter.results)
    assert all(r.pause_s < 5 for r in snapshotter.results)
    headers = store.headers()
    assert len(headers) == 3  # kept the three newest
    for header in headers:  # each stored state is the replay of the journal up to its seq
        replayed = Engine(load_instruments())
        for command in journal.read():
            if command.seq > header.seq:
                break
            replayed.apply(command)
        assert replayed.state_hash() == header.state_hash
        snapshot = decode_snapshot(store.load(header.seq))
        assert Engine.from_snapshot(load_instruments(), snapshot).state_hash() == header.state_hash
    recovery = recover_state(load_instruments(), journal, store)
    assert recovery.snapshot_seq == headers[0].seq and not recovery.rejected
    assert recovery.replayed == journal.last_seq() - headers[0].seq
    assert recovery.engine.state_hash() == engine.state_hash() == _full_replay(journal).state_hash()
    journal.close()
    store.close()


def test_corrupt_snapshots_fall_back_to_older_ones_then_to_a_full_replay(
        opener: Callable[[], Journal], snapshot_opener: Callable[..., SnapshotStore]) -> None:
    journal, store = opener(), snapshot_opener()
    engine, _ = _run_flow(journal, store, 700, every=200)
    expected = engine.state_hash()
    newest, older, oldest = (h.seq for h in store.headers())
    store.corrupt_for_tests(newest)
    said: list[str] = []
    recovery = recover_state(load_instruments(), journal, store, say=said.append)
    assert recovery.snapshot_seq == older and len(recovery.rejected) == 1
    assert str(newest) in said[0] and recovery.engine.state_hash() == expected
    # A snapshot whose bytes load but whose stored hash is wrong is refused too.
    body = store.load(oldest)
    store.prune(0)
    store.save(body, oldest, "0" * 64)
    recovery = recover_state(load_instruments(), journal, store, say=said.append)
    assert recovery.snapshot_seq == 0 and "hash" in recovery.rejected[0]
    assert said[-1] == "no sound snapshot: replaying the whole journal"
    assert recovery.engine.state_hash() == expected
    journal.close()
    store.close()


def test_a_snapshot_beyond_the_journal_is_refused(
        opener: Callable[[], Journal], snapshot_opener: Callable[..., SnapshotStore]) -> None:
    journal, store = opener(), snapshot_opener()
    engine, _ = _run_flow(journal, store, 100, every=0)
    store.save(encode_snapshot(engine.to_snapshot()), engine.last_seq + 5, engine.state_hash())
    recovery = recover_state(load_instruments(), journal, store)
    assert recovery.snapshot_seq == 0 and "beyond" in recovery.rejected[0]
    assert recovery.engine.state_hash() == engine.state_hash()
    journal.close()
    store.close()
