"""Events rebuilt from the journal: what the publisher republishes when the bus is behind.

The journal keeps commands, not events; the core is deterministic, so applying the same
commands to the same state gives the same events, byte for byte. To rebuild the events after
seq A, a fresh engine (or the newest sound snapshot at or before A) replays the journal and
the entries past A are handed on. This costs a replay, which is why the publisher keeps a
backlog in memory and only falls back on the journal after a restart or an overflow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from perpx.bus.codec import Durable
from perpx.core.engine import Engine
from perpx.core.instruments import InstrumentSpec
from perpx.store.journal import Journal
from perpx.store.recovery import latest_sound_snapshot
from perpx.store.snapshots import SnapshotInfo, SnapshotStore

# Entries for the seqs after `after` up to `upto`, in order.
EventSource = Callable[[int, int], Iterator[Durable]]


def journal_source(instruments: Iterable[InstrumentSpec], journal: Journal,
                   snapshots: SnapshotStore | None = None) -> EventSource:
    """Return an `EventSource` that replays `journal` (from a snapshot when one fits)."""
    specs = list(instruments)

    def replay(after: int, upto: int) -> Iterator[Durable]:
        engine: Engine | None = None
        if snapshots is not None:
            def at_or_before(header: SnapshotInfo) -> str | None:
                return None if header.seq <= after else "after the range"
            engine, _ = latest_sound_snapshot(specs, journal, snapshots, accept=at_or_before)
        if engine is None:
            engine = Engine(specs)
        for command in journal.read(engine.last_seq + 1):
            if command.seq > upto:
                return
            events = engine.apply(command)
            if command.seq > after:
                yield Durable(command.seq, command.ts_ms, events)

    return replay
