"""Entries encoded once for the writer's reply and its bus batch give the same bytes."""

from __future__ import annotations

from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.bench.bus import flow as durable_flow
from perpx.bus import BatchCodec, Durable, EventBatch
from perpx.bus.codec import EncodedEntries
from perpx.core.commands import Command
from perpx.core.events import Event, IndexPriceUpdated
from perpx.store.codec import FORMAT_JSON
from perpx.transport.wire import Wire


@cache
def _flow() -> list[tuple[Command, list[Event]]]:
    return durable_flow(300)


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(1, 40), min_size=1, max_size=20),
       replies_first=st.lists(st.booleans(), min_size=20, max_size=20),
       answered=st.lists(st.booleans(), min_size=300, max_size=300),
       keep=st.sampled_from([1, 3, 4096]))
def test_shared_encoding_gives_the_bytes_of_encoding_each_time(
        cuts: list[int], replies_first: list[bool], answered: list[bool], keep: int) -> None:
    flow = _flow()
    entries = EncodedEntries(keep=keep)
    shared, plain = BatchCodec(entries), BatchCodec()
    wire, wire_plain = Wire(entries), Wire()
    first = 1
    for cut, replies_early in zip(cuts, replies_first, strict=False):
        last = min(len(flow), first + cut - 1)
        part = flow[first - 1:last]
        batch = EventBatch.of([Durable(c.seq, c.ts_ms, e) for c, e in part])
        # Some commands are answered over the endpoint (before or after the batch goes on
        # the bus), some are not (the writer's own commands): any order, same bytes.
        asked = [(c, e) for c, e in part if answered[c.seq - 1]]
        if replies_early:
            for _, events in asked:
                assert wire.ok(events, last) == wire_plain.ok(events, last)
        assert shared.encode(batch) == plain.encode(batch)
        if not replies_early:
            for _, events in asked:
                assert wire.ok(events, last) == wire_plain.ok(events, last)
        first = last + 1
        if first > len(flow):
            break
    assert len(entries._kept) <= keep


def test_an_entry_is_found_again_only_for_its_own_events() -> None:
    entries = EncodedEntries()
    events: list[Event] = [IndexPriceUpdated(1, 5, "BTCUSDT", 100)]
    once = entries.raw(Durable(1, 5, events))
    other: list[Event] = [IndexPriceUpdated(1, 5, "BTCUSDT", 101)]  # same seq, another list
    assert entries.raw(Durable(1, 5, other)) != once
    assert entries.hits == 0
    again = entries.raw(Durable(1, 5, other))
    assert bytes(memoryview(again)) == BatchCodec()._encoder.encode(Durable(1, 5, other))
    assert entries.hits == 1


def test_an_integer_past_64_bits_still_falls_back_to_json() -> None:
    batch = EventBatch.of([Durable(1, 5, [IndexPriceUpdated(1, 5, "BTCUSDT", 2**70)])])
    body = BatchCodec(EncodedEntries()).encode(batch)
    assert body[0] == FORMAT_JSON
    assert body == BatchCodec().encode(batch)
