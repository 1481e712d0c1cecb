from __future__ import annotations

import pytest

from perpx.bench.bus import flow as durable_flow
from perpx.bus import BatchCodec, Durable, EventBatch
from perpx.bus.codec import event_types
from perpx.core.events import Event, IndexPriceUpdated
from perpx.store.codec import FORMAT_JSON, CodecError
from support.bus import batch_of


def test_a_batch_round_trips_with_every_event_as_the_engine_gave_it() -> None:
    flow = durable_flow(400)
    batch = batch_of(flow, 1, 400)
    codec = BatchCodec()
    decoded = codec.decode(codec.encode(batch))
    assert decoded == batch
    assert list(decoded.events()) == [event for _, events in flow for event in events]
    assert decoded.msg_id == "1-400"


def test_every_concrete_event_type_is_in_the_union() -> None:
    kinds = event_types()
    assert IndexPriceUpdated in kinds and Event not in kinds
    assert len(kinds) == len(set(kinds)) > 25


def test_an_integer_past_64_bits_falls_back_to_json() -> None:
    huge = 2**70
    batch = EventBatch.of([Durable(1, 5, [IndexPriceUpdated(1, 5, "BTCUSDT", huge)])])
    codec = BatchCodec()
    body = codec.encode(batch)
    assert body[0] == FORMAT_JSON
    assert codec.decode(body) == batch


def test_a_batch_that_is_not_one_contiguous_range_is_refused() -> None:
    flow = durable_flow(10)
    codec = BatchCodec()
    entries = batch_of(flow, 1, 10).entries
    holed = EventBatch(1, 10, entries[:4] + entries[5:])
    with pytest.raises(CodecError):
        codec.decode(codec.encode(holed))
    with pytest.raises(CodecError):
        codec.decode(b"\x09junk")
    with pytest.raises(CodecError):
        codec.decode(b"\x01\xc1")


def test_after_trims_a_batch_to_the_seqs_past_a_position() -> None:
    batch = batch_of(durable_flow(10), 3, 8)
    assert batch.after(2) is batch
    assert [e.seq for e in batch.after(5).entries] == [6, 7, 8]
    assert batch.after(5).first_seq == 6
