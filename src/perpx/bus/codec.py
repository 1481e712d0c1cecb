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

An entry's msgpack (``[seq, ts_ms, [event, ...]]``) is made once, on first need, and kept
on the entry (`BatchCodec.body`): the writer's reply to the command (`encode_entry`) and the
bus message of its batch (`encode`) splice the same bytes, where each encoded every event
again before (issue #15). Splicing an entry's msgpack into the array that holds it gives
the bytes that encoding the whole would, so the wire is unchanged; a batch with an entry
past msgpack's integers goes as JSON, whole, as before (tests/unit/bus/test_bus_spliced.py
holds both to the encoding of the whole).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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

# `Durable.body` of an entry whose events hold an integer past msgpack's 64 bits: a batch
# holding it goes as JSON, whole (`encode_body`), and has no msgpack to splice.
NO_MSGPACK = msgspec.Raw(b"")
_Raw = msgspec.Raw
_force_setattr = msgspec.structs.force_setattr


class Durable(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One durable command's seq, time and events.

    `body` is the entry's msgpack once `BatchCodec.body` made it (None before; `NO_MSGPACK`
    when it has none): derived from the three fields, so it takes no part in equality, and
    an entry is only ever encoded through `BatchCodec`, never as a struct of four fields.
    """

    seq: int
    ts_ms: int
    events: list[Event]
    body: msgspec.Raw | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Durable):
            return NotImplemented
        return (self.seq == other.seq and self.ts_ms == other.ts_ms
                and self.events == other.events)

    # Unhashable: equal entries may hold a body or not.
    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_events(cls, events: list[Event], seq: int = 0) -> Durable:
        """Return the entry of a command known by its events alone (a resend's answer).

        Every event of a command carries the command's seq and time; without events, the
        entry holds `seq` and time 0.
        """
        return cls(events[0].seq, events[0].ts_ms, events) if events else cls(seq, 0, [])


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

    def body(self, entry: Durable) -> msgspec.Raw:
        """Return `entry`'s msgpack, made on the first call and kept on the entry.

        `NO_MSGPACK` when an integer of its events does not fit msgpack's 64 bits.
        """
        body = entry.body
        if body is None:
            try:
                body = _Raw(self._encoder.encode((entry.seq, entry.ts_ms, entry.events)))
            except OverflowError:
                body = NO_MSGPACK
            # Frozen for everyone else: the entry's own encoding is all that is ever set.
            _force_setattr(entry, "body", body)
        return body

    def encode(self, batch: EventBatch) -> bytes:
        """Return the format byte and the encoded batch, its entries' bodies spliced."""
        entries = batch.entries
        # The bodies already made, read without a call each (the writer's reply made them).
        bodies = [entry.body for entry in entries]
        if None in bodies:
            body = self.body
            bodies = [body(entry) for entry in entries]
        if NO_MSGPACK in bodies:
            return self._whole(batch.first_seq, batch.last_seq, entries)
        return encode_body((batch.first_seq, batch.last_seq, bodies), self._encoder)

    def encode_entry(self, entry: Durable) -> bytes:
        """Return what `encode` gives the batch of the one `entry` (the writer's reply).

        No `EventBatch` is built for it; its body is the one the bus batch splices.
        """
        body = entry.body
        if body is None:
            body = self.body(entry)
        if body is NO_MSGPACK:
            return self._whole(entry.seq, entry.seq, (entry,))
        return encode_body((entry.seq, entry.seq, (body,)), self._encoder)

    def _whole(self, first: int, last: int, entries: Sequence[Durable]) -> bytes:
        """Return the batch encoded at once: JSON, as an entry's events have no msgpack."""
        return encode_body((first, last, [(e.seq, e.ts_ms, e.events) for e in entries]),
                           self._encoder)

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
