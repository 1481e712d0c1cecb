"""The writer's publisher: never blocks, bounded backlog, retries, catch-up from the journal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import typer

from perpx.bench.bus import flow as durable_flow
from perpx.bus import (
    BusPublisher,
    EventBatch,
    InProcessBus,
    JetStreamBus,
    catch_up,
    journal_source,
)
from perpx.cli import open_publisher
from perpx.config import ServeSettings, load_config
from perpx.instruments import load_instruments
from perpx.sequencer import Sequencer
from perpx.service import ExchangeService
from perpx.store.journal import MemoryJournal
from perpx.store.sqlite import SqliteJournal
from support.bus import journal_of, seqs

FLOW = durable_flow(3000)
SPECS = load_instruments()


class FlakyBus:
    """An in-process bus that can be down (publishes fail) or slow (each waits)."""

    def __init__(self) -> None:
        self.inner = InProcessBus()
        self.down = False
        self.delay_s = 0.0
        self.attempts = 0

    async def publish(self, batch: EventBatch) -> bool:
        self.attempts += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.down:
            raise ConnectionError("bus down")
        return await self.inner.publish(batch)

    async def last_seq(self) -> int:
        if self.down:
            raise ConnectionError("bus down")
        return await self.inner.last_seq()

    def subscribe(self, from_seq: int) -> AsyncIterator[EventBatch]:
        return self.inner.subscribe(from_seq)

    async def close(self) -> None:
        await self.inner.close()


async def everything(bus: InProcessBus, until: int) -> list[EventBatch]:
    out: list[EventBatch] = []
    async for batch in bus.subscribe(1):
        out.append(batch)
        if batch.last_seq >= until:
            break
    return out


def test_every_durable_command_reaches_the_bus_once_in_batches_of_at_most_max_batch() -> None:
    async def run() -> None:
        bus = InProcessBus()
        publisher = BusPublisher(bus, max_batch=100)
        for command, events in FLOW:
            publisher.on_durable(command, events)
            if command.seq % 250 == 0:
                await asyncio.sleep(0)
        assert await publisher.close()
        batches = await everything(bus, len(FLOW))
        assert seqs(batches) == list(range(1, len(FLOW) + 1))
        assert max(len(b.entries) for b in batches) <= 100
        assert [e for b in batches for e in b.events()] == [e for _, x in FLOW for e in x]

    asyncio.run(run())


def test_a_down_bus_never_blocks_the_writer_and_the_backlog_stays_bounded() -> None:
    async def run() -> None:
        bus = FlakyBus()
        bus.down = True
        journal = MemoryJournal()
        publisher = BusPublisher(bus, journal_source(SPECS, journal), max_batch=64,
                                 max_backlog=500, retry_s=0.001, retry_max_s=0.01)
        from perpx.core.engine import Engine

        sequencer = Sequencer(Engine(SPECS), journal)
        sequencer.subscribe(publisher.on_durable)
        started = time.perf_counter()
        done = [sequencer.submit_nowait(command) for command, _ in FLOW]
        await asyncio.gather(*done)  # every command acknowledged while the bus is down
        writer_s = time.perf_counter() - started
        assert sequencer.durable_seq == len(FLOW)
        assert publisher.retries > 0 and publisher.overflows > 0
        assert len(publisher._backlog) <= 500
        assert publisher.lag == len(FLOW)
        # Back up: the dropped range comes from the journal, the rest from the backlog.
        bus.down = False
        assert await publisher.close(timeout_s=60)
        assert publisher.republished > 0
        assert seqs(await everything(bus.inner, len(FLOW))) == list(range(1, len(FLOW) + 1))
        assert writer_s < 60  # generous: a shared machine; the point is it finished at all

    asyncio.run(run())


def test_a_slow_bus_gets_bigger_batches_not_a_slower_writer() -> None:
    async def run() -> None:
        bus = FlakyBus()
        bus.delay_s = 0.02
        publisher = BusPublisher(bus, max_batch=256)
        for command, events in FLOW[:1000]:
            publisher.on_durable(command, events)  # returns at once: nothing awaited
            if command.seq % 100 == 0:
                await asyncio.sleep(0.005)
        assert await publisher.close(timeout_s=30)
        assert bus.attempts < 1000 // 10  # many commands per message
        assert seqs(await everything(bus.inner, 1000)) == list(range(1, 1001))

    asyncio.run(run())


def test_a_restarted_writer_republishes_from_the_journal_what_the_bus_missed() -> None:
    async def run() -> None:
        flaky = FlakyBus()
        flaky.delay_s = 0.001
        bus = flaky.inner
        journal = journal_of(FLOW)
        first = BusPublisher(flaky, max_batch=100)
        for command, events in FLOW[:1234]:
            first.on_durable(command, events)
        while await bus.last_seq() < 300:  # it published part of the backlog...
            await asyncio.sleep(0.001)
        assert first._task is not None
        first._task.cancel()  # ...then the process died
        await asyncio.sleep(0.01)
        published = await bus.last_seq()
        assert 0 < published < 1234
        # The restart: the new writer follows the journal's end and catches the bus up.
        second = BusPublisher(bus, journal_source(SPECS, journal), max_batch=100)
        second.follow(journal.last_seq())
        second.start()
        assert await second.close(timeout_s=60)
        assert second.republished == len(FLOW) - published
        batches = await everything(bus, len(FLOW))
        assert seqs(batches) == list(range(1, len(FLOW) + 1))
        assert [e for b in batches for e in b.events()] == [e for _, x in FLOW for e in x]

    asyncio.run(run())


def test_catch_up_alone_fills_the_bus_to_the_journal_end() -> None:
    async def run() -> None:
        bus = InProcessBus()
        journal = journal_of(FLOW[:500])
        assert await catch_up(bus, journal_source(SPECS, journal), 500, max_batch=64) == 500
        assert await catch_up(bus, journal_source(SPECS, journal), 500) == 0
        assert seqs(await everything(bus, 500)) == list(range(1, 501))

    asyncio.run(run())


def test_the_service_publishes_each_durable_command_when_given_a_bus() -> None:
    async def run() -> None:
        bus = InProcessBus()
        journal = MemoryJournal()
        service = ExchangeService(SPECS, journal, maker=False, feed_interval_s=3600,
                                  bus=BusPublisher(bus, journal_source(SPECS, journal)))
        for command, _ in FLOW[:200]:
            await service.submit(command)
        await service.close()
        batches = await everything(bus, 200)
        assert seqs(batches) == list(range(1, 201))

    asyncio.run(run())


def test_serve_settings_choose_the_bus_and_default_to_none(tmp_path: Path) -> None:
    journal = MemoryJournal()
    assert open_publisher(ServeSettings(), SPECS, journal) is None
    memory = open_publisher(ServeSettings(bus="memory"), SPECS, journal)
    assert memory is not None and isinstance(memory.bus, InProcessBus)
    nats = open_publisher(ServeSettings(bus="nats://127.0.0.1:4222", bus_stream="VENUE_A"),
                          SPECS, journal)
    assert nats is not None and isinstance(nats.bus, JetStreamBus)
    assert nats.bus.stream == "VENUE_A"
    with pytest.raises(typer.BadParameter):
        open_publisher(ServeSettings(bus="kafka://x"), SPECS, journal)
    config = tmp_path / "perpx.toml"
    config.write_text('[serve]\nbus = "memory"\nbus_stream = "V1"\n')
    assert load_config(config).serve.bus == "memory"


def test_a_restarted_service_republishes_the_journal_the_bus_never_saw(tmp_path: Path) -> None:
    async def run() -> None:
        first = ExchangeService(SPECS, SqliteJournal(tmp_path / "j.db"), maker=False)
        answered = [await first.submit(command) for command, _ in FLOW[:100]]
        await first.close()
        bus = InProcessBus()
        journal = SqliteJournal(tmp_path / "j.db")
        again = ExchangeService(SPECS, journal, maker=False,
                                bus=BusPublisher(bus, journal_source(SPECS, journal)))
        answered += [await again.submit(command) for command, _ in FLOW[100:110]]
        await again.close()
        batches = await everything(bus, 110)
        assert seqs(batches) == list(range(1, 111))
        assert [entry.events for b in batches for entry in b.entries] == answered

    asyncio.run(run())
