"""`Sequencer.submit_all`: a batch applied in order at once, answered by one future (issue #14).

The batch path must be `submit` for each of its commands, with nothing between them: the same
stamps, journal, request ids and events; the same window (a resend of a batch whose prefix is
journaled answers that prefix and applies the rest); the same subscribers' order; the same
fail-stop.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.bus.codec import Durable
from perpx.core import Engine, OrderType, PlaceOrder, Side
from perpx.core.commands import Command, Deposit
from perpx.core.events import Event, OrderAccepted
from perpx.instruments import load_instruments
from perpx.sequencer import Sequencer, SequencerStopped
from perpx.store.journal import MemoryJournal, OutcomeNotKept, new_request_id
from perpx.store.loadflow import order_flow
from support.builders import btcusdt


def _order(account: int, price: int) -> PlaceOrder:
    return PlaceOrder(0, 0, account, "BTCUSDT", Side.BUY, OrderType.LIMIT, 1, price)


def _orders(count: int, first_price: int = 600_000) -> list[Command]:
    return [_order(1, first_price + i) for i in range(count)]


class _SlowJournal(MemoryJournal):
    """Each flush takes a little while, so that what is submitted meanwhile is in flight."""

    def append(self, commands: Sequence[Command], request_ids: Any = None) -> None:
        import time

        time.sleep(0.002)
        super().append(commands, request_ids)


class _FailingJournal(MemoryJournal):
    """The first `good` flushes are written; every later one fails."""

    def __init__(self, good: int) -> None:
        super().__init__()
        self.good = good

    def append(self, commands: Sequence[Command], request_ids: Any = None) -> None:
        if self.good == 0:
            raise OSError("disk full")
        self.good -= 1
        super().append(commands, request_ids)


async def _funded(journal: MemoryJournal | None = None, **options: Any) -> Sequencer:
    """A sequencer whose account 1 is funded (seq 1)."""
    seq = Sequencer(Engine([btcusdt()]), journal or MemoryJournal(), clock=lambda: 1, **options)
    await seq.submit(Deposit(0, 0, 1, "USDT", 10**12))
    return seq


class _BreaksOnThird:
    """An engine whose third apply raises (a broken invariant in the core)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._calls = 0

    def apply(self, command: Command) -> list[Event]:
        self._calls += 1
        if self._calls == 3:
            raise AssertionError("a broken invariant")
        return self._engine.apply(command)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def _run(chunks: list[int], seed: int) -> tuple[list[Command], list[tuple[int, bytes]],
                                                list[list[Event]], str]:
    """Submit one flow, one by one (no chunks) or in `chunks` sizes; what the writer did."""
    commands = list(order_flow(sum(chunks), seed, accounts=5))
    rids = [new_request_id() if i % 3 else None for i in range(len(commands))]
    ticks = itertools.count(1_700_000_000_000, 7)

    async def run(batched: bool) -> tuple[list[Command], list[tuple[int, bytes]],
                                          list[list[Event]], str]:
        seq = Sequencer(Engine(load_instruments()), MemoryJournal(), clock=lambda: next(ticks))
        outcomes: list[list[Event]] = []
        at = 0
        for size in chunks:
            part, ids = commands[at:at + size], rids[at:at + size]
            at += size
            if batched:
                entries = await seq.submit_all(part, ids)
                # Each answered with its entry: the seq and time its events carry.
                assert all(entry == Durable.from_events(entry.events)
                           for entry in entries if entry.events)
                outcomes.extend(entry.events for entry in entries)
            else:
                outcomes.extend(await asyncio.gather(*(
                    seq.submit(command, rid) for command, rid in zip(part, ids, strict=True))))
        return (list(seq.journal.read()), seq.journal.request_ids(), outcomes,
                seq.engine.state_hash())

    one_by_one = asyncio.run(run(False))
    ticks = itertools.count(1_700_000_000_000, 7)
    assert asyncio.run(run(True)) == one_by_one
    return one_by_one


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=8), st.integers(0, 10**6))
def test_a_batch_journals_and_answers_what_submit_would(chunks: list[int], seed: int) -> None:
    journal, _, outcomes, _ = _run(chunks, seed)
    assert [c.seq for c in journal] == list(range(1, sum(chunks) + 1))
    assert [events[0].seq for events in outcomes if events] == \
        [c.seq for c, events in zip(journal, outcomes, strict=True) if events]


def test_a_batch_is_stamped_in_order_with_nothing_between_its_commands() -> None:
    clock = iter([5_000, 4_000, 6_000, 6_500, 7_000, 8_000, 9_000])

    async def run() -> None:
        seq = Sequencer(Engine([btcusdt()]), _SlowJournal(), clock=lambda: next(clock))
        await seq.submit(Deposit(0, 0, 1, "USDT", 10**12))
        one = seq.submit_all_nowait(_orders(3))
        two = seq.submit_all_nowait(_orders(3, 700_000))
        assert not one.done() and not two.done()  # nothing is answered before it is durable
        first, second = await asyncio.gather(one, two)
        assert [entry.seq for entry in first] == [2, 3, 4]
        assert [entry.seq for entry in second] == [5, 6, 7]
        assert all(isinstance(entry.events[0], OrderAccepted) for entry in first + second)
        stamped = list(seq.journal.read())
        assert [c.ts_ms for c in stamped] == [5_000, 5_000, 6_000, 6_500, 7_000, 8_000, 9_000]
        assert await seq.submit_all([]) == []

    asyncio.run(run())


def test_subscribers_see_a_batch_command_by_command_in_seq_order_once_durable() -> None:
    seen: list[int] = []

    async def run() -> None:
        seq = await _funded(_SlowJournal(), max_batch=7)  # one batch over several flushes
        seq.subscribe(lambda command, events: seen.append(command.seq))
        single = seq.submit_nowait(_order(1, 500_000))
        done = seq.submit_all_nowait(_orders(20))
        assert seen == []
        assert [c.seq for c, _ in seq.applied_after(10)] == list(range(11, 23))
        outcomes = await done
        assert single.done()  # earlier in seq: durable before the batch's last command
        assert [entry.events[0].seq for entry in outcomes] == list(range(3, 23))

    asyncio.run(run())
    assert seen == list(range(2, 23))


def test_a_resent_batch_answers_its_journaled_prefix_and_applies_the_rest() -> None:
    async def run() -> None:
        seq = await _funded()
        rids = [new_request_id() for _ in range(4)]
        first = await seq.submit_all(_orders(2), rids[:2])
        # The whole batch again (the gateway did not hear the answer): the prefix from the
        # window, the rest applied, in order.
        again = await seq.submit_all(_orders(4), rids)
        assert again[:2] == first
        assert [entry.events[0].seq for entry in again] == [2, 3, 4, 5]
        assert seq.resent == 2 and seq.engine.last_seq == 5 == seq.journal.last_seq()
        assert seq.journal.request_ids() == list(zip([2, 3, 4, 5], rids, strict=True))
        # Answered whole from the window: nothing applied.
        assert await seq.submit_all(_orders(4), rids) == again
        assert seq.engine.last_seq == 5 and seq.resent == 6

    asyncio.run(run())


def test_a_resend_while_the_batch_is_in_flight_waits_for_it() -> None:
    async def run() -> None:
        seq = await _funded(_SlowJournal())
        rids = [new_request_id() for _ in range(4)]
        batch = seq.submit_all_nowait(_orders(3), rids[:3])
        # Alone, one command of the batch (its future made now), twice: the same future.
        alone = seq.submit_nowait(_order(1, 1), rids[1])
        assert seq.submit_nowait(_order(1, 1), rids[1]) is alone
        # The batch again with one more: the three in flight answered, the fourth applied.
        again = seq.submit_all_nowait(_orders(4), rids)
        assert seq.engine.last_seq == 5
        first = await batch
        answers = await again
        assert answers[:3] == first and answers[3].events[0].seq == 5
        assert await alone == first[1].events
        assert seq.resent == 5 and seq.journal.last_seq() == 5
        # A request id twice in one batch: the second is the first's answer.
        rid = new_request_id()
        twice = await seq.submit_all([_order(1, 2), _order(1, 3)], [rid, rid])
        assert twice[0] == twice[1] and seq.engine.last_seq == 6

    asyncio.run(run())


def test_a_batch_with_an_outcome_not_kept_fails_and_applies_the_rest() -> None:
    async def run() -> None:
        seq = await _funded()
        lost, fresh = new_request_id(), new_request_id()
        seq.remember(lost, 1, None)
        with pytest.raises(OutcomeNotKept, match="seq 1"):
            await seq.submit_all(_orders(2), [lost, fresh])
        await seq.drain()
        assert seq.recorded(fresh) == 2 and seq.journal.last_seq() == 2

    asyncio.run(run())


def test_a_journal_failure_mid_batch_fails_its_future_and_stops_the_sequencer() -> None:
    seen: list[int] = []

    async def run() -> None:
        seq = await _funded(_FailingJournal(good=2), max_batch=4)
        seq.subscribe(lambda command, events: seen.append(command.seq))
        rids = [new_request_id() for _ in range(10)]
        done = seq.submit_all_nowait(_orders(10), rids)
        alone = seq.submit_nowait(_order(1, 1), rids[6])  # in the flush that fails
        with pytest.raises(SequencerStopped, match="disk full"):
            await done
        with pytest.raises(SequencerStopped):
            await alone
        assert isinstance(seq.failure, OSError)
        assert seq.journal.last_seq() == 5 and seen == [2, 3, 4, 5]  # the first flush only
        with pytest.raises(SequencerStopped):
            await seq.submit_all(_orders(1))
        with pytest.raises(SequencerStopped):
            await seq.submit(_order(1, 1))
        assert seq.engine.last_seq == 11  # nothing applied after the failure

    asyncio.run(run())


def test_a_core_failure_mid_batch_stops_the_sequencer() -> None:
    async def run() -> None:
        seq = await _funded()
        seq.engine = _BreaksOnThird(seq.engine)  # type: ignore[assignment]
        with pytest.raises(AssertionError):
            seq.submit_all_nowait(_orders(5))
        assert isinstance(seq.failure, AssertionError)
        with pytest.raises(SequencerStopped):
            seq.submit_all_nowait(_orders(1))

    asyncio.run(run())


def test_a_core_failure_answers_the_batch_in_flight_and_fails_the_rest() -> None:
    """The batch being journaled is durable whatever the core does next: it is answered."""
    async def run() -> None:
        seq = await _funded(_SlowJournal())
        flying = seq.submit_all_nowait(_orders(2))
        one = seq.submit_nowait(_order(1, 500_000))
        await asyncio.sleep(0)  # the flush takes all three: in flight for ~2 ms
        seq.engine = _BreaksOnThird(seq.engine)  # type: ignore[assignment]
        waiting = seq.submit_nowait(_order(1, 500_001))
        batch = seq.submit_all_nowait(_orders(1))
        with pytest.raises(AssertionError):
            seq.submit_nowait(_order(1, 500_002))
        assert len(await flying) == 2 and (await one)[0].seq == 4
        for lost in (waiting, batch):
            with pytest.raises(SequencerStopped):
                await lost
        await seq.drain()
        assert seq.journal.last_seq() == seq.durable_seq == 4

    asyncio.run(run())


def test_close_drains_a_batch_then_refuses_more() -> None:
    async def run() -> None:
        seq = await _funded(_SlowJournal())
        done = seq.submit_all_nowait(_orders(5))
        await seq.close()
        assert done.done() and len(done.result()) == 5
        with pytest.raises(SequencerStopped):
            seq.submit_all_nowait(_orders(1))

    asyncio.run(run())
