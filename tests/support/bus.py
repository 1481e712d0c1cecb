"""Durable commands with their events for the event-bus tests: a seeded, stamped flow."""

from __future__ import annotations

from perpx.bus import Durable, EventBatch
from perpx.core.commands import Command
from perpx.core.events import Event
from perpx.store.journal import MemoryJournal


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
