"""The in-process bus: order, duplicates, gaps, retention, several consumers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from perpx.bench.bus import flow as durable_flow
from perpx.bus import EventBatch, GapError, InProcessBus, follow
from support.bus import batch_of, seqs
from support.bus_projection import CountingProjection, Crash

FLOW = durable_flow(100)


async def collect(bus: InProcessBus, from_seq: int, until: int) -> list[EventBatch]:
    out: list[EventBatch] = []
    async for batch in bus.subscribe(from_seq):
        out.append(batch)
        if batch.last_seq >= until:
            break
    return out


def test_consumers_get_every_seq_once_in_order_from_where_they_ask() -> None:
    async def run() -> None:
        bus = InProcessBus()
        for first in range(1, 101, 10):
            assert await bus.publish(batch_of(FLOW, first, first + 9))
        assert await bus.last_seq() == 100
        assert seqs(await collect(bus, 1, 100)) == list(range(1, 101))
        # A position inside a batch: the batch comes trimmed to start there.
        assert seqs(await collect(bus, 35, 100)) == list(range(35, 101))

    asyncio.run(run())


def test_a_live_consumer_is_woken_by_each_publish() -> None:
    async def run() -> None:
        bus = InProcessBus()
        consumer = asyncio.create_task(collect(bus, 1, 30))
        for first in (1, 11, 21):
            await asyncio.sleep(0)
            await bus.publish(batch_of(FLOW, first, first + 9))
        assert seqs(await asyncio.wait_for(consumer, 5)) == list(range(1, 31))

    asyncio.run(run())


def test_a_republished_batch_is_dropped_as_a_duplicate() -> None:
    async def run() -> None:
        bus = InProcessBus()
        assert await bus.publish(batch_of(FLOW, 1, 10))
        assert not await bus.publish(batch_of(FLOW, 1, 10))
        assert await bus.publish(batch_of(FLOW, 11, 20))
        assert bus.duplicates == 1
        assert seqs(await collect(bus, 1, 20)) == list(range(1, 21))

    asyncio.run(run())


def test_an_overlapping_batch_is_trimmed_so_each_seq_comes_once() -> None:
    async def run() -> None:
        bus = InProcessBus()
        await bus.publish(batch_of(FLOW, 1, 10))
        await bus.publish(batch_of(FLOW, 5, 15))  # another range: not a duplicate by id
        await bus.publish(batch_of(FLOW, 3, 9))  # wholly old
        await bus.publish(batch_of(FLOW, 16, 20))
        assert seqs(await collect(bus, 1, 20)) == list(range(1, 21))

    asyncio.run(run())


def test_a_missing_range_is_a_gap_error_not_skipped() -> None:
    async def run() -> None:
        bus = InProcessBus()
        await bus.publish(batch_of(FLOW, 1, 10))
        await bus.publish(batch_of(FLOW, 21, 30))
        got: list[int] = []
        with pytest.raises(GapError) as gap:
            async for batch in bus.subscribe(1):
                got.extend(entry.seq for entry in batch.entries)
        assert got == list(range(1, 11))
        assert (gap.value.expected, gap.value.got) == (11, 21)

    asyncio.run(run())


def test_seqs_pruned_from_the_window_are_a_gap_error() -> None:
    async def run() -> None:
        bus = InProcessBus(keep_commands=20)
        for first in range(1, 101, 10):
            await bus.publish(batch_of(FLOW, first, first + 9))
        with pytest.raises(GapError):
            await collect(bus, 1, 100)
        assert seqs(await collect(bus, 91, 100)) == list(range(91, 101))

    asyncio.run(run())


def test_close_ends_the_subscriptions() -> None:
    async def run() -> None:
        bus = InProcessBus()
        consumer = asyncio.create_task(collect(bus, 1, 10**9))
        await bus.publish(batch_of(FLOW, 1, 10))
        await asyncio.sleep(0.01)
        await bus.close()
        assert seqs(await asyncio.wait_for(consumer, 5)) == list(range(1, 11))

    asyncio.run(run())


def test_a_projector_killed_mid_batch_resumes_from_its_own_position(tmp_path: Path) -> None:
    async def run() -> None:
        bus = InProcessBus()
        for first in range(1, 101, 10):
            await bus.publish(batch_of(FLOW, first, first + 9))
        crashing = CountingProjection(tmp_path / "p.db", crash_after_batches=4)
        with pytest.raises(Crash):
            await follow(bus, crashing, until=100)
        again = CountingProjection(tmp_path / "p.db")
        assert again.position() == 40
        assert await follow(bus, again, until=100) == 100
        reference = CountingProjection(tmp_path / "ref.db")
        await follow(bus, reference, until=100)
        assert again.rows() == reference.rows() and sum(again.rows().values()) > 0

    asyncio.run(run())
