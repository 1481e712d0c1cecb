"""The sequencer: seq and time stamping, group commit, ack only when durable, fail-stop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from perpx.core import Engine, OrderType, PlaceOrder, Side
from perpx.core.commands import Command, Deposit
from perpx.core.events import OrderAccepted
from perpx.sequencer import Sequencer, SequencerStopped
from perpx.store.journal import JournalError, MemoryJournal
from perpx.store.recovery import recover
from support.builders import btcusdt


def _deposit(account: int) -> Deposit:
    return Deposit(0, 0, account, "USDT", 10**12)


def _order(account: int, price: int) -> PlaceOrder:
    return PlaceOrder(0, 0, account, "BTCUSDT", Side.BUY, OrderType.LIMIT, 1, price)


class _SlowJournal(MemoryJournal):
    """Counts flushes; each takes a little while so commands pile up behind it."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes: list[int] = []

    def append(self, commands: Sequence[Command], request_ids: Any = None) -> None:
        import time

        time.sleep(0.002)
        self.flushes.append(len(commands))
        super().append(commands, request_ids)


class _BrokenJournal(MemoryJournal):
    def append(self, commands: Sequence[Command], request_ids: Any = None) -> None:
        raise OSError("disk full")


def test_commands_are_stamped_in_order_and_time_never_runs_back() -> None:
    clock = iter([5_000, 4_000, 6_000])

    async def run() -> list[Command]:
        seq = Sequencer(Engine([btcusdt()]), MemoryJournal(), clock=lambda: next(clock))
        for account in (1, 2, 3):
            await seq.submit(_deposit(account))
        return list(seq.journal.read())

    stamped = asyncio.run(run())
    assert [c.seq for c in stamped] == [1, 2, 3]
    assert [c.ts_ms for c in stamped] == [5_000, 5_000, 6_000]


def test_group_commit_batches_concurrent_commands_and_acks_each() -> None:
    journal = _SlowJournal()

    async def run() -> list[list[object]]:
        seq = Sequencer(Engine([btcusdt()]), journal, clock=lambda: 1)
        await seq.submit(_deposit(1))
        results = await asyncio.gather(*(seq.submit(_order(1, 600_000 + i)) for i in range(200)))
        return [list(r) for r in results]

    results = asyncio.run(run())
    assert all(isinstance(r[0], OrderAccepted) for r in results)
    assert sum(journal.flushes) == 201
    assert len(journal.flushes) < 20  # many commands per flush, not one each


def test_subscribers_see_durable_commands_in_seq_order() -> None:
    seen: list[int] = []

    async def run() -> None:
        seq = Sequencer(Engine([btcusdt()]), _SlowJournal(), clock=lambda: 1)
        seq.subscribe(lambda command, events: seen.append(command.seq))
        futures = [seq.submit_nowait(_deposit(a)) for a in range(1, 50)]
        assert seen == []  # nothing is published before it is durable
        await asyncio.gather(*futures)

    asyncio.run(run())
    assert seen == list(range(1, 50))


def test_journal_failure_stops_the_sequencer_and_fails_pending_acks() -> None:
    async def run() -> None:
        seq = Sequencer(Engine([btcusdt()]), _BrokenJournal(), clock=lambda: 1)
        with pytest.raises(SequencerStopped):
            await seq.submit(_deposit(1))
        with pytest.raises(SequencerStopped):
            await seq.submit(_deposit(2))
        assert isinstance(seq.failure, OSError)

    asyncio.run(run())


def test_recovery_replays_the_journal_to_the_same_state() -> None:
    journal = MemoryJournal()

    async def run() -> str:
        seq = Sequencer(Engine([btcusdt()]), journal, clock=lambda: 1)
        for account in (1, 2):
            await seq.submit(_deposit(account))
        await seq.submit(PlaceOrder(0, 0, 1, "BTCUSDT", Side.BUY, OrderType.LIMIT, 5, 600_000))
        await seq.submit(PlaceOrder(0, 0, 2, "BTCUSDT", Side.SELL, OrderType.LIMIT, 3, 600_000))
        return seq.engine.state_hash()

    live_hash = asyncio.run(run())
    restarted = Engine([btcusdt()])
    assert recover(restarted, journal) == 4
    assert restarted.state_hash() == live_hash


def test_sequencer_refuses_an_engine_behind_its_journal() -> None:
    journal = MemoryJournal()
    journal.append([Deposit(1, 1, 1, "USDT", 1)])
    with pytest.raises(ValueError, match="recover"):
        Sequencer(Engine([btcusdt()]), journal)


def test_journal_refuses_gaps() -> None:
    journal = MemoryJournal()
    with pytest.raises(JournalError):
        journal.append([Deposit(2, 1, 1, "USDT", 1)])
