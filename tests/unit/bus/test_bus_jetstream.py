"""The event bus on a real NATS JetStream server (a fresh stream per test, deleted after)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from perpx.bench.bus import flow as durable_flow
from perpx.bus import (
    BusPublisher,
    EventBatch,
    GapError,
    JetStreamBus,
    follow,
    journal_source,
    republish,
)
from perpx.core.engine import Engine
from perpx.instruments import load_instruments
from perpx.sequencer import Sequencer
from perpx.store.journal import MemoryJournal
from support.bus import batch_of, journal_of, seqs
from support.bus_projection import CountingProjection, Crash

pytestmark = pytest.mark.service

FLOW = durable_flow(2000)
SPECS = load_instruments()


class SlowJetStream(JetStreamBus):
    killed = False

    async def publish(self, batch: EventBatch) -> bool:
        await asyncio.sleep(0.01)
        if self.killed:  # the process is gone: nothing more leaves it
            raise asyncio.CancelledError
        return await super().publish(batch)


async def read(bus: JetStreamBus, from_seq: int, until: int,
               timeout_s: float = 30.0) -> list[EventBatch]:
    out: list[EventBatch] = []

    async def run() -> None:
        async for batch in bus.subscribe(from_seq):
            out.append(batch)
            if batch.last_seq >= until:
                return

    await asyncio.wait_for(run(), timeout_s)
    return out


async def stream_messages(bus: JetStreamBus) -> int:
    js = await bus._jetstream()
    return int((await js.stream_info(bus.stream)).state.messages)


def test_publish_then_consume_in_order_from_any_seq(nats_url: str, stream_name: str) -> None:
    async def run() -> None:
        bus = JetStreamBus(nats_url, stream_name)
        publisher = BusPublisher(bus, max_batch=64)
        for command, events in FLOW:
            publisher.on_durable(command, events)
            if command.seq % 200 == 0:
                await asyncio.sleep(0)
        assert await publisher.close(timeout_s=30)
        assert await bus.last_seq() == len(FLOW)
        batches = await read(bus, 1, len(FLOW))
        assert seqs(batches) == list(range(1, len(FLOW) + 1))
        assert [e for b in batches for e in b.events()] == [e for _, x in FLOW for e in x]
        # A consumer resuming from its own stored position: exactly the seqs after it.
        assert seqs(await read(bus, 1377, len(FLOW))) == list(range(1377, len(FLOW) + 1))
        # A live consumer waits at the end for what comes next.
        tail = asyncio.create_task(read(JetStreamBus(nats_url, stream_name), 2001, 2001))
        await asyncio.sleep(0.2)
        more = durable_flow(2001)[-1]
        await bus.publish(EventBatch.of([batch_of([more], 1, 1).entries[0]]))
        assert seqs(await tail) == [2001]
        await bus.close()

    asyncio.run(run())


def test_a_republished_range_is_dropped_as_a_duplicate(nats_url: str, stream_name: str) -> None:
    async def run() -> None:
        bus = JetStreamBus(nats_url, stream_name)
        journal = journal_of(FLOW)
        source = journal_source(SPECS, journal)
        assert await republish(bus, source, 0, len(FLOW), max_batch=100) == len(FLOW)
        stored = await stream_messages(bus)
        assert stored == len(FLOW) // 100
        # A writer that restarted and republishes the same ranges (same message ids), on a
        # fresh connection: JetStream stores none of them again.
        again = JetStreamBus(nats_url, stream_name)
        assert not await again.publish(batch_of(FLOW, 1, 100))
        assert await republish(again, source, 0, len(FLOW), max_batch=100) == len(FLOW)
        assert again.duplicates == 1 + len(FLOW) // 100
        assert await stream_messages(bus) == stored
        assert seqs(await read(bus, 1, len(FLOW))) == list(range(1, len(FLOW) + 1))
        await bus.close()
        await again.close()

    asyncio.run(run())


def test_a_writer_killed_mid_way_catches_up_from_the_journal_exactly_once(
        nats_url: str, stream_name: str) -> None:
    async def run() -> None:
        bus = SlowJetStream(nats_url, stream_name)  # so the kill lands mid-way
        journal = journal_of(FLOW)
        first = BusPublisher(bus, max_batch=50)
        for command, events in FLOW[:1500]:
            first.on_durable(command, events)
        while await bus.last_seq() < 400:
            await asyncio.sleep(0.005)
        assert first._task is not None
        bus.killed = True
        first._task.cancel()  # kill: the rest of its backlog is lost with the process
        await asyncio.wait([first._task], timeout=10)
        assert first._task.done()
        await bus.close()
        probe = JetStreamBus(nats_url, stream_name)
        reached = await probe.last_seq()
        await probe.close()
        assert 400 <= reached < 1500
        # The restarted writer starts from the stream's last message, republishes the rest
        # from the journal (events rebuilt by replay), and nothing arrives twice.
        restarted_bus = JetStreamBus(nats_url, stream_name)
        second = BusPublisher(restarted_bus, journal_source(SPECS, journal), max_batch=50)
        second.follow(journal.last_seq())
        second.start()
        assert await second.close(timeout_s=60)
        assert second.republished == len(FLOW) - reached
        batches = await read(restarted_bus, 1, len(FLOW))
        assert seqs(batches) == list(range(1, len(FLOW) + 1))
        assert [e for b in batches for e in b.events()] == [e for _, x in FLOW for e in x]
        await restarted_bus.close()

    asyncio.run(run())


def test_a_missing_range_is_a_gap_error(nats_url: str, stream_name: str) -> None:
    async def run() -> None:
        bus = JetStreamBus(nats_url, stream_name)
        await bus.publish(batch_of(FLOW, 1, 10))
        await bus.publish(batch_of(FLOW, 21, 30))
        got: list[int] = []
        with pytest.raises(GapError) as gap:
            async for batch in bus.subscribe(1):
                got.extend(e.seq for e in batch.entries)
        assert got == list(range(1, 11))
        assert (gap.value.expected, gap.value.got) == (11, 21)
        # Seqs older than the stream holds (removed by its limits) are a gap too.
        js = await bus._jetstream()
        await js.delete_msg(stream_name, 1)
        with pytest.raises(GapError):
            await read(bus, 5, 30, timeout_s=10)
        await bus.close()

    asyncio.run(run())


def test_an_unreachable_nats_does_not_block_the_writer(nats_url: str,
                                                        stream_name: str) -> None:
    async def run() -> None:
        # Nothing listens on port 9: every connect fails at once, as with NATS down.
        dead = JetStreamBus("nats://127.0.0.1:9", stream_name, timeout_s=0.2)
        journal = MemoryJournal()
        publisher = BusPublisher(dead, journal_source(SPECS, journal), max_batch=100,
                                 max_backlog=300, retry_s=0.01, retry_max_s=0.05)
        sequencer = Sequencer(Engine(SPECS), journal)
        sequencer.subscribe(publisher.on_durable)
        await asyncio.wait_for(
            asyncio.gather(*(sequencer.submit_nowait(c) for c, _ in FLOW)), 60)
        assert sequencer.durable_seq == len(FLOW)  # every command acknowledged
        assert publisher.lag == len(FLOW)
        assert len(publisher._backlog) <= 300 and publisher.overflows > 0
        while publisher.retries == 0:  # the dead bus is being retried, the writer is done
            await asyncio.sleep(0.05)
        # NATS is back: the publisher republishes from the journal what it had to drop.
        live = JetStreamBus(nats_url, stream_name)
        publisher.bus = live
        assert await publisher.close(timeout_s=60)
        assert seqs(await read(live, 1, len(FLOW))) == list(range(1, len(FLOW) + 1))
        await live.close()

    asyncio.run(run())


def test_a_projector_killed_mid_batch_resumes_with_identical_rows(
        nats_url: str, stream_name: str, tmp_path: Path) -> None:
    async def run() -> None:
        bus = JetStreamBus(nats_url, stream_name)
        await republish(bus, journal_source(SPECS, journal_of(FLOW)), 0, len(FLOW), 100)
        crashing = CountingProjection(tmp_path / "p.db", crash_after_batches=7)
        with pytest.raises(Crash):
            await asyncio.wait_for(follow(bus, crashing, until=len(FLOW)), 30)
        again = CountingProjection(tmp_path / "p.db")
        assert again.position() == 700
        assert await asyncio.wait_for(follow(bus, again, until=len(FLOW)), 30) == len(FLOW)
        reference = CountingProjection(tmp_path / "ref.db")
        await asyncio.wait_for(follow(bus, reference, until=len(FLOW)), 30)
        assert again.rows() == reference.rows()
        assert sum(again.rows().values()) == sum(len(e) for _, e in FLOW)
        await bus.close()

    asyncio.run(run())


def test_a_batch_over_the_byte_cap_is_split_the_same_way_every_time(
        nats_url: str, stream_name: str) -> None:
    async def run() -> None:
        bus = JetStreamBus(nats_url, stream_name, max_bytes=4096)
        batch = batch_of(FLOW, 1, 200)
        parts = bus.encode(batch)
        assert len(parts) > 1 and all(len(body) <= 4096 or len(part.entries) == 1
                                      for part, body in parts)
        assert [p.msg_id for p, _ in parts] == [p.msg_id for p, _ in bus.encode(batch)]
        assert await bus.publish(batch)
        assert not await bus.publish(batch)  # the retry: every part a duplicate
        assert await stream_messages(bus) == len(parts)
        assert seqs(await read(bus, 1, 200)) == list(range(1, 201))
        await bus.close()

    asyncio.run(run())
