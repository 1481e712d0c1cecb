"""`BatchCodec.encode_one` gives the bytes of the code it shortcuts.

The command path's reply (`Wire.ok`) encodes a command's one entry as tuples, without
building a `Durable` and an `EventBatch`; it must stay byte for byte what `BatchCodec.encode`
gives that one-entry batch, for any events and seqs, the JSON fallback past 64-bit integers
included, and a reply must still read back as the entry it was made from.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.bus.codec import BatchCodec, Durable, EventBatch
from perpx.core.enums import BalanceReason
from perpx.core.events import BalanceChanged, Event
from perpx.transport.wire import Wire

CODEC = BatchCodec()
WIRE = Wire()

seqs = st.integers(min_value=0, max_value=2**63 - 1)
amounts = st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1),
                    st.integers(min_value=2**64, max_value=2**80))  # JSON's


@st.composite
def outcomes(draw: st.DrawFn) -> list[Event]:
    seq, ts_ms = draw(seqs), draw(seqs)
    return [BalanceChanged(seq, ts_ms, draw(st.integers(0, 10**6)), "USDT", draw(amounts),
                           draw(amounts), draw(st.sampled_from(list(BalanceReason))))
            for _ in range(draw(st.integers(0, 4)))]


@settings(max_examples=300, deadline=None)
@given(outcomes(), seqs, seqs)
def test_encode_one_is_encode_of_the_one_entry_batch(events: list[Event], seq: int,
                                                    ts_ms: int) -> None:
    one = CODEC.encode_one(seq, ts_ms, events)
    assert one == CODEC.encode(EventBatch.of([Durable(seq, ts_ms, events)]))


@settings(max_examples=100, deadline=None)
@given(outcomes(), seqs)
def test_a_reply_reads_back_as_its_entry(events: list[Event], durable_seq: int) -> None:
    seq, answered = WIRE.reply(WIRE.ok(events, durable_seq))
    assert answered == events
    assert seq == (events[0].seq if events else durable_seq)
