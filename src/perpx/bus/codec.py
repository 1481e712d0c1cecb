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

_MSGPACK = bytes([FORMAT_MSGPACK])


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


class EncodedEntries:
    """Durable entries' msgpack, kept from one encoding to the next: each encoded once.

    The writer answers a command with its entry (`perpx.transport.wire.Wire.ok`) and
    publishes the same entry in a bus batch (`JetStreamBus`); a filled order's events are
    ~1.8 kB of maps, ~17k instructions to encode, so the two share one encoding: whichever
    comes first encodes and keeps it, the second takes it (and it is dropped). Found again
    only for the same events object at the same seq and time, so an entry rebuilt elsewhere
    (a replay, another service in the process) is encoded afresh; an event list is never
    changed once `Engine.apply` returned it (the sequencer's window, its subscribers and
    the answer share it already). At most `keep` wait for their second use (the rest are
    dropped oldest first and encoded again if asked: the bytes are the same).
    """

    def __init__(self, keep: int = 4096) -> None:
        self.keep = keep
        self._encoder = msgspec.msgpack.Encoder()
        self._kept: dict[int, tuple[list[Event], int, msgspec.Raw]] = {}
        self.hits = 0

    def raw(self, entry: Durable) -> msgspec.Raw:
        """Return the msgpack of `entry` (raises OverflowError past 64-bit integers)."""
        kept = self._kept
        found = kept.pop(entry.seq, None)
        if found is not None and found[0] is entry.events and found[1] == entry.ts_ms:
            self.hits += 1
            return found[2]
        raw = msgspec.Raw(self._encoder.encode(entry))
        if entry.events:  # an answer without events (`Wire.ok`) is no bus entry
            kept[entry.seq] = (entry.events, entry.ts_ms, raw)
            if len(kept) > self.keep:
                del kept[next(iter(kept))]
        return raw


class BatchCodec:
    """Encode and decode event batches; cheap to build, one per task or thread.

    With `entries` (shared by the codecs that encode the same entries: the writer's replies
    and its bus), each entry is encoded once; the bytes are the same either way.
    """

    def __init__(self, entries: EncodedEntries | None = None) -> None:
        union: Any = Union[tuple(event_types())]  # noqa: UP007  (built at run time)
        wire: Any = tuple[int, int, list[tuple[int, int, list[union]]]]
        self._encoder = msgspec.msgpack.Encoder()
        self._msgpack = msgspec.msgpack.Decoder(wire)
        self._json = msgspec.json.Decoder(wire)
        self._entries = entries

    def encode(self, batch: EventBatch) -> bytes:
        """Return the format byte and the encoded batch."""
        entries = self._entries
        if entries is not None:
            try:
                # The batch is an array of three (array_like), its entries arrays: the same
                # bytes as encoding the batch whole.
                return _MSGPACK + self._encoder.encode(
                    (batch.first_seq, batch.last_seq, [entries.raw(e) for e in batch.entries]))
            except OverflowError:
                pass  # JSON, as `encode_body` decides for the whole batch
        return encode_body(batch, self._encoder)

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
