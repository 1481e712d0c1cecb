"""An entry's events are encoded once on the writer: the reply and the bus batch splice them.

`BatchCodec.body` makes an entry's msgpack once and keeps it on the entry; the writer's reply
(`Wire.ok_entry`, `Wire.ok_all`) and the bus message of its batch (`BatchCodec.encode`, and
JetStream's split parts) splice it. The bytes on the wire must stay exactly what encoding
the whole gave before, which this file writes out as the old code did it (the three-field
array-like structs, encoded at once by `encode_body`): for events of every type, any seqs,
bodies made in any order or not at all, the JSON fallback past 64-bit integers, batches,
split batches and groups; and, on a writer's real flow (every command type the realistic
stream sends), for each reply and each bus message the writer made.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.bench.realistic import realistic_stream
from perpx.bus import BusPublisher, InProcessBus, JetStreamBus
from perpx.bus.codec import NO_MSGPACK, BatchCodec, Durable, EventBatch, event_types
from perpx.core.commands import Command
from perpx.core.engine import Engine
from perpx.core.events import Event
from perpx.instruments import load_instruments
from perpx.sequencer import Sequencer
from perpx.store.codec import encode_body
from perpx.store.journal import MemoryJournal, new_request_id
from perpx.transport.wire import Wire

CODEC = BatchCodec()
WIRE = Wire()


# -- the old encoding, as the code before this change made it ------------------------------

class _OldDurable(msgspec.Struct, frozen=True, array_like=True, gc=False):
    seq: int
    ts_ms: int
    events: list[Event]


class _OldBatch(msgspec.Struct, frozen=True, array_like=True, gc=False):
    first_seq: int
    last_seq: int
    entries: list[_OldDurable]


_OLD = msgspec.msgpack.Encoder()


def old_batch(entries: list[tuple[int, int, list[Event]]]) -> bytes:
    """The bus message of a batch: `encode_body` of the whole batch struct."""
    olds = [_OldDurable(seq, ts_ms, events) for seq, ts_ms, events in entries]
    return encode_body(_OldBatch(olds[0].seq, olds[-1].seq, olds), _OLD)


def old_reply(events: list[Event], durable_seq: int) -> bytes:
    """A command's OK reply: its one-entry batch, seq and time from its events."""
    seq, ts_ms = (events[0].seq, events[0].ts_ms) if events else (durable_seq, 0)
    return b"\x00" + old_batch([(seq, ts_ms, events)])


def old_replies(outcomes: list[list[Event]], durable_seq: int) -> bytes:
    """A batch request's OK reply: each command's."""
    return b"\x00" + msgspec.msgpack.encode([old_reply(e, durable_seq) for e in outcomes])


# -- events of every type, from their fields -----------------------------------------------

WORD = st.integers(-(2**63), 2**63 - 1)
PAST_64_BITS = st.integers(2**64, 2**80)  # msgpack cannot hold it: JSON


def _values(info: msgspec.inspect.Type, ints: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    """Any value of the field type `info` (integers drawn from `ints`)."""
    if isinstance(info, msgspec.inspect.IntType):
        return ints
    if isinstance(info, msgspec.inspect.StrType):
        return st.text(max_size=6)
    if isinstance(info, msgspec.inspect.BoolType):
        return st.booleans()
    if isinstance(info, msgspec.inspect.NoneType):
        return st.none()
    if isinstance(info, msgspec.inspect.EnumType):
        members: list[enum.Enum] = list(info.cls)
        return st.sampled_from(members)
    if isinstance(info, msgspec.inspect.UnionType):
        return st.one_of([_values(t, ints) for t in info.types])
    if isinstance(info, msgspec.inspect.DictType):
        return st.dictionaries(st.text(max_size=4), _values(info.value_type, ints), max_size=2)
    if isinstance(info, msgspec.inspect.AnyType):
        return st.one_of(ints, st.text(max_size=4), st.none(), st.lists(ints, max_size=2))
    raise AssertionError(f"no strategy for {info}")


def _event(kind: type[Event], seq: int, ts_ms: int, ints: st.SearchStrategy[int]
           ) -> st.SearchStrategy[Event]:
    info = msgspec.inspect.type_info(kind)
    assert isinstance(info, msgspec.inspect.StructType)
    fields = {f.name: _values(f.type, ints) for f in info.fields
              if f.name not in ("seq", "ts_ms")}
    return st.fixed_dictionaries(fields).map(lambda values: kind(seq=seq, ts_ms=ts_ms,
                                                                 **values))


@st.composite
def entries(draw: st.DrawFn, seq: int) -> Durable:
    """A command's entry at `seq`: events of any types, carrying its seq and time."""
    ts_ms = draw(st.integers(0, 2**63 - 1))
    kinds = draw(st.lists(st.sampled_from(event_types()), max_size=4))
    events = [draw(_event(kind, seq, ts_ms, WORD)) for kind in kinds]
    if draw(st.integers(0, 9)) == 0:  # now and then one past msgpack's integers
        kind = draw(st.sampled_from(event_types()))
        events.insert(draw(st.integers(0, len(events))), draw(_event(kind, seq, ts_ms,
                                                                     PAST_64_BITS)))
    return Durable(seq, ts_ms, events)


@st.composite
def batches(draw: st.DrawFn) -> list[Durable]:
    first = draw(st.integers(0, 2**63 - 100))
    return [draw(entries(first + n)) for n in range(draw(st.integers(1, 6)))]


def _triple(entry: Durable) -> tuple[int, int, list[Event]]:
    return entry.seq, entry.ts_ms, entry.events


@settings(max_examples=30, deadline=None)
@given(st.tuples(*(_event(kind, 5, 6, WORD) for kind in event_types())), st.integers(0, 9))
def test_an_entry_with_every_event_type_is_the_old_bytes(every: tuple[Event, ...],
                                                          durable_seq: int) -> None:
    entry = Durable(5, 6, list(every))
    assert {type(e) for e in entry.events} == set(event_types())
    assert WIRE.ok_entry(entry, durable_seq) == old_reply(entry.events, durable_seq)
    assert CODEC.encode(EventBatch.of([entry])) == old_batch([_triple(entry)])


@settings(max_examples=300, deadline=None)
@given(batches(), st.data(), st.integers(0, 2**63 - 1))
def test_replies_and_batches_are_the_old_bytes_whatever_made_the_bodies(
        batch: list[Durable], data: st.DataObject, durable_seq: int) -> None:
    # Some bodies made first by the reply, some by the batch (below), some never before.
    for entry in batch:
        if data.draw(st.booleans()):
            assert WIRE.ok_entry(entry, durable_seq) == old_reply(entry.events, durable_seq)
    whole = EventBatch.of(batch)
    assert CODEC.encode(whole) == old_batch([_triple(e) for e in batch])
    for entry in batch:  # every body made now: the reply splices it
        assert WIRE.ok_entry(entry, durable_seq) == old_reply(entry.events, durable_seq)
        assert WIRE.ok(entry.events, durable_seq) == old_reply(entry.events, durable_seq)
        assert entry.body is not None and (entry.body is NO_MSGPACK) == (
            CODEC.encode_entry(entry)[0] == 2)
    assert WIRE.ok_all(batch, durable_seq) == old_replies([e.events for e in batch],
                                                          durable_seq)
    # A batch's body is the same again (kept bodies), and it still reads back whole.
    assert CODEC.encode(whole) == old_batch([_triple(e) for e in batch])
    assert CODEC.decode(CODEC.encode(whole)) == whole


@settings(max_examples=100, deadline=None)
@given(batches(), st.integers(200, 2000))
def test_a_split_batch_is_the_old_bytes_part_by_part(batch: list[Durable],
                                                     max_bytes: int) -> None:
    fresh = [Durable(*_triple(e)) for e in batch]  # no body yet
    parts = JetStreamBus(max_bytes=max_bytes).encode(EventBatch.of(batch))
    assert [p.msg_id for p, _ in parts] == [
        p.msg_id for p, _ in JetStreamBus(max_bytes=max_bytes).encode(EventBatch.of(fresh))]
    for part, body in parts:
        assert body == old_batch([_triple(e) for e in part.entries])


@settings(max_examples=100, deadline=None)
@given(entries(7), st.integers(0, 2**63 - 1))
def test_a_reply_reads_back_as_its_entry(entry: Durable, durable_seq: int) -> None:
    seq, answered = WIRE.reply(WIRE.ok_entry(entry, durable_seq))
    assert answered == entry.events
    assert seq == (entry.seq if entry.events else durable_seq)


def test_equal_entries_with_and_without_a_body_are_equal() -> None:
    made = Durable(3, 4, [])
    CODEC.body(made)
    assert made.body is not None and made == Durable(3, 4, []) != Durable(3, 5, [])


# -- the writer's own flow ------------------------------------------------------------------

class _Recording(InProcessBus):
    """An in-process bus that keeps the bytes JetStream would send of each batch."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[tuple[EventBatch, bytes]] = []
        self._codec = BatchCodec()

    async def publish(self, batch: EventBatch) -> bool:
        self.bodies.append((batch, self._codec.encode(batch)))
        return await super().publish(batch)


def test_the_writer_replies_and_publishes_the_old_bytes_on_a_real_flow() -> None:
    """Every command of the realistic stream, in groups: replies and bus messages."""
    stream = realistic_stream(3000, seed=11)
    commands: list[Command] = stream.setup + stream.commands
    clock = iter([c.ts_ms for c in commands])  # each command its own time, as recorded
    sizes = itertools.cycle([1, 7, 64, 3, 200, 2])
    wire = Wire()

    async def run() -> None:
        bus = _Recording()
        publisher = BusPublisher(bus, max_batch=50)
        spec = next(s for s in load_instruments() if s.symbol == "BTCUSDT")
        sequencer = Sequencer(Engine([spec]), MemoryJournal(), clock=lambda: next(clock))
        seen: dict[int, list[Event]] = {}
        sequencer.subscribe(lambda command, events: seen.__setitem__(command.seq, events))
        sequencer.subscribe_entries(publisher.on_entries)
        at, turn = 0, 0
        while at < len(commands):
            group = commands[at:at + next(sizes)]
            at += len(group)
            answered = await sequencer.submit_all(group, [new_request_id() for _ in group])
            turn += 1
            if turn % 2:  # the bus first, now and then: its batch makes the bodies
                await asyncio.sleep(0)
            durable = sequencer.durable_seq
            for entry in answered:
                assert wire.ok_entry(entry, durable) == old_reply(seen[entry.seq], durable)
            assert wire.ok_all(answered, durable) == old_replies(
                [seen[e.seq] for e in answered], durable)
        assert await publisher.close()
        assert [c.seq for c in sequencer.journal.read()] == list(range(1, len(commands) + 1))
        assert sum(len(batch.entries) for batch, _ in bus.bodies) == len(commands)
        for batch, body in bus.bodies:
            assert body == old_batch([(e.seq, e.ts_ms, seen[e.seq]) for e in batch.entries])
            # In-process consumers get the very events the engine gave: nothing decoded.
            assert all(e.events is seen[e.seq] for e in batch.entries)
        kinds = {type(c) for c in commands}
        events = {type(e) for outcome in seen.values() for e in outcome}
        assert len(kinds) >= 6 and len(events) >= 10  # the flow is varied, as it claims

    asyncio.run(run())
