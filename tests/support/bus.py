"""Durable commands with their events for the event-bus tests: a seeded, stamped flow."""

from __future__ import annotations

import msgspec

from perpx.bus import Durable, EventBatch
from perpx.core.commands import Command
from perpx.core.engine import Engine
from perpx.core.events import Event
from perpx.instruments import load_instruments
from perpx.store.journal import MemoryJournal
from perpx.store.loadflow import order_flow


def durable_flow(count: int, seed: int = 5) -> list[tuple[Command, list[Event]]]:
    """Return `count` stamped commands (seq 1..count) with the events the engine gave."""
    engine = Engine(load_instruments())
    out: list[tuple[Command, list[Event]]] = []
    for seq, command in enumerate(order_flow(count, seed), start=1):
        stamped = msgspec.structs.replace(command, seq=seq, ts_ms=1_700_000_000_000 + seq)
        out.append((stamped, engine.apply(stamped)))
    return out


def journal_of(flow: list[tuple[Command, list[Event]]]) -> MemoryJournal:
    """Return a journal holding the flow's commands."""
    journal = MemoryJournal()
    journal.append([command for command, _ in flow])
    return journal


def batch_of(flow: list[tuple[Command, list[Event]]], first: int, last: int) -> EventBatch:
    """Return the batch of seqs first..last of the flow."""
    return EventBatch.of([Durable(c.seq, c.ts_ms, e) for c, e in flow[first - 1:last]])


def seqs(batches: list[EventBatch]) -> list[int]:
    """Every seq the batches carry, in order (a repeat or a hole shows)."""
    return [entry.seq for batch in batches for entry in batch.entries]
