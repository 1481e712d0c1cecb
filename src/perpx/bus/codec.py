"""The bus's unit: a durable batch of commands' events, and its bytes on the wire.

A batch covers a contiguous range of journal seqs, ``first_seq..last_seq``, with one entry
per command in that range (a command that emitted no event still has its entry, so a
consumer can tell "nothing happened at seq N" from "seq N is missing"). An entry carries the
command's seq and time (what the streams' clocks advance on) and its events, exactly as
`Engine.apply` returned them.

Bytes follow the journal's convention (`perpx.store.codec`): one format byte, then msgpack of
the batch as an array ``[first_seq, last_seq, [[seq, ts_ms, [event, ...]], ...]]``, events
as the core's tagged Structs; JSON only when an integer does not fit msgpack's 64 bits. The
event union is collected from `Event`'s subclasses, as the command union is, so an event
added to the core later travels without a change here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Union

import msgspec

from perpx.core import events as _events  # noqa: F401  (registers every event type)
from perpx.core.events import Event
from perpx.store.codec import (
    FORMAT_JSON,
    FORMAT_MSGPACK,
    CodecError,
    concrete_types,
    encode_body,
)


class Durable(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One durable command's seq, time and events."""

    seq: int
    ts_ms: int
    events: list[Event]


class EventBatch(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """The entries of the contiguous journal seqs ``first_seq..last_seq``, in order."""

    first_seq: int
    last_seq: int
    entries: list[Durable]

    @classmethod
    def of(cls, entries: list[Durable]) -> EventBatch:
        """Return the batch of `entries` (non-empty, contiguous seqs)."""
        return cls(entries[0].seq, entries[-1].seq, entries)

    @property
    def msg_id(self) -> str:
        """The batch's message id: its seq range, so a republish of it is a duplicate."""
        return f"{self.first_seq}-{self.last_seq}"

    def events(self) -> Iterator[Event]:
        """Yield every event of the batch, in order."""
        for entry in self.entries:
            yield from entry.events

    def after(self, seq: int) -> EventBatch:
        """Return the part of the batch past `seq` (the whole batch if it starts later)."""
        if seq < self.first_seq:
            return self
        return EventBatch(seq + 1, self.last_seq, self.entries[seq + 1 - self.first_seq:])


def event_types() -> list[type[Event]]:
    """Return every concrete event type."""
    return concrete_types(Event)


class BatchCodec:
    """Encode and decode event batches; cheap to build, one per task or thread."""

    def __init__(self) -> None:
        union: Any = Union[tuple(event_types())]  # noqa: UP007  (built at run time)
        wire: Any = tuple[int, int, list[tuple[int, int, list[union]]]]
        self._encoder = msgspec.msgpack.Encoder()
        self._msgpack = msgspec.msgpack.Decoder(wire)
        self._json = msgspec.json.Decoder(wire)

    def encode(self, batch: EventBatch) -> bytes:
        """Return the format byte and the encoded batch."""
        return encode_body(batch, self._encoder)

    def encode_one(self, seq: int, ts_ms: int, events: list[Event]) -> bytes:
        """Return what `encode` gives the batch of the one entry (seq, ts_ms, events).

        The command path's reply (`Wire.ok`), once per command: tuples encode as the
        array-like structs do, so no `Durable` and no `EventBatch` is built for it
        (tests/unit/bus/test_bus_encode_one.py holds the two to the same bytes).
        """
        return encode_body((seq, seq, ((seq, ts_ms, events),)), self._encoder)

    def decode(self, body: bytes) -> EventBatch:
        """Return the batch in `body`; raise `CodecError` if it is not a sound one."""
        if not body:
            raise CodecError("empty batch body")
        try:
            if body[0] == FORMAT_MSGPACK:
                first, last, rows = self._msgpack.decode(memoryview(body)[1:])
            elif body[0] == FORMAT_JSON:
                first, last, rows = self._json.decode(memoryview(body)[1:])
            else:
                raise CodecError(f"unknown batch format {body[0]}")
        except msgspec.DecodeError as bad:
            raise CodecError(f"corrupt batch body: {bad}") from bad
        entries = [Durable(seq, ts_ms, events) for seq, ts_ms, events in rows]
        # A batch is one contiguous range: anything else is a writer bug or a corrupt body,
        # and a consumer must not fold it as if it were whole.
        if not entries or last - first + 1 != len(entries) or any(
                entry.seq != first + i for i, entry in enumerate(entries)):
            raise CodecError(f"batch {first}-{last} does not hold exactly seqs {first}..{last}")
        return EventBatch(first, last, entries)
