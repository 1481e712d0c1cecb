"""`BatchCodec.encode_one_into` and `Wire.ok_frame` give the bytes of the code they shortcut.

The command path writes each reply in place (`Wire.ok_frame`); it must stay byte for byte
`frame(request_id, Wire.ok(events, durable_seq))`, the one-entry `EventBatch` encoded by
`BatchCodec.encode`, for any events, ids and seqs, the JSON fallback past 64-bit integers
included.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.bus.codec import BatchCodec, Durable, EventBatch
from perpx.core.enums import BalanceReason
from perpx.core.events import BalanceChanged, Event
from perpx.transport.wire import Wire, frame

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
@given(outcomes(), st.integers(min_value=0, max_value=2**64 - 1), seqs)
def test_ok_frame_is_the_frame_of_ok(events: list[Event], request_id: int,
                                     durable_seq: int) -> None:
    built = WIRE.ok_frame(request_id, events, durable_seq)
    assert bytes(built) == frame(request_id, WIRE.ok(events, durable_seq))


@settings(max_examples=100, deadline=None)
@given(outcomes(), st.binary(max_size=8))
def test_encode_one_into_appends_what_encode_gives(events: list[Event], before: bytes) -> None:
    codec = BatchCodec()
    seq, ts_ms = (events[0].seq, events[0].ts_ms) if events else (7, 0)
    buffer = bytearray(before)
    codec.encode_one_into(buffer, seq, ts_ms, events)
    assert bytes(buffer) == before + codec.encode(EventBatch.of([Durable(seq, ts_ms, events)]))
