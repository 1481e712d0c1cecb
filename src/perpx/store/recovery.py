"""Rebuild the engine after a restart: the newest sound snapshot, then the journal's tail.

Each snapshot is checked before it is trusted: it must decode, load, sit at the seq its
header says, not lie beyond the journal's end, and hash to the state hash stored with it. A
snapshot that fails is reported and the next older one is tried; with none left, the whole
journal is replayed from an empty engine. Synchronous, so a service calls it before it starts
its event loop's sequencer (or in ``asyncio.to_thread``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from perpx.core.engine import Engine
from perpx.core.events import Event
from perpx.core.instruments import InstrumentSpec, spec_from_record
from perpx.store.codec import CodecError, decode_snapshot
from perpx.store.journal import Journal
from perpx.store.snapshots import SnapshotInfo, SnapshotStore


@dataclass(slots=True)
class Recovery:
    """How the engine was rebuilt."""

    engine: Engine
    snapshot_seq: int = 0  # 0: no snapshot used, the whole journal replayed
    replayed: int = 0
    seconds: float = 0.0
    rejected: list[str] = field(default_factory=list)  # why each skipped snapshot was refused


def recover(engine: Engine, journal: Journal) -> int:
    """Replay into `engine` every journaled command after its seq; return how many."""
    count = 0
    for command in journal.read(engine.last_seq + 1):
        engine.apply(command)
        count += 1
    return count


def load_snapshot(instruments: list[InstrumentSpec], store: SnapshotStore, seq: int,
                  expected_hash: str, verify: bool = True) -> Engine:
    """Load the snapshot at `seq`; raise ValueError if it is not exactly what was stored."""
    try:
        data = decode_snapshot(store.load(seq))
        engine = Engine.from_snapshot(instruments, data)
    except (CodecError, ValueError, KeyError, TypeError) as bad:
        raise ValueError(f"snapshot {seq} does not load: {bad}") from bad
    if engine.last_seq != seq:
        raise ValueError(f"snapshot {seq} holds the state at seq {engine.last_seq}")
    if verify and engine.state_hash() != expected_hash:
        raise ValueError(f"snapshot {seq} state hash differs from the stored one")
    return engine


def listed_in_snapshot(store: SnapshotStore, seq: int) -> list[InstrumentSpec]:
    """Return the contracts the operator had listed in the engine snapshot at `seq`.

    What a restart from that snapshot must know besides the configured table (the read
    side's checkpoint was folded with them: `readside.Checkpoints`). Decodes the snapshot;
    asked only of snapshots whose read side does not fit the configured table alone.
    """
    data = decode_snapshot(store.load(seq))
    return [spec_from_record(record) for record in data.get("listed", ())]


def latest_sound_snapshot(
    instruments: Iterable[InstrumentSpec],
    journal: Journal,
    snapshots: SnapshotStore | None,
    verify: bool = True,
    say: Callable[[str], None] | None = None,
    accept: Callable[[SnapshotInfo], str | None] | None = None,
) -> tuple[Engine | None, list[str]]:
    """Return the engine of the newest sound snapshot (None if none) and why others were refused.

    `accept(header)` may refuse a snapshot before it is loaded by returning the reason (the
    service refuses those its read side cannot start from).
    """
    specs = list(instruments)
    rejected: list[str] = []
    last = journal.last_seq()
    for header in snapshots.headers() if snapshots is not None else []:
        refusal = None
        if header.seq > last:
            refusal = f"snapshot {header.seq} is beyond the journal's end ({last})"
        elif accept is not None:
            refusal = accept(header)
        if refusal is not None:
            rejected.append(refusal)
        else:
            try:
                return load_snapshot(specs, snapshots, header.seq,  # type: ignore[arg-type]
                                     header.state_hash, verify), rejected
            except ValueError as bad:
                rejected.append(str(bad))
        if say is not None:
            say(rejected[-1] + "; trying an older one")
    if rejected and say is not None:
        say("no sound snapshot: replaying the whole journal")
    return None, rejected


def recover_state(
    instruments: Iterable[InstrumentSpec],
    journal: Journal,
    snapshots: SnapshotStore | None = None,
    verify: bool = True,
    say: Callable[[str], None] | None = None,
) -> Recovery:
    """Rebuild the engine from the newest sound snapshot and the journal after it."""
    started = time.perf_counter()
    specs = list(instruments)
    engine, rejected = latest_sound_snapshot(specs, journal, snapshots, verify, say)
    snapshot_seq = engine.last_seq if engine is not None else 0
    if engine is None:
        engine = Engine(specs)
    replayed = recover(engine, journal)
    return Recovery(engine, snapshot_seq, replayed, time.perf_counter() - started, rejected)


def recover_engine(
    instruments: Iterable[InstrumentSpec],
    journal: Journal,
    snapshots: SnapshotStore | None = None,
    verify: bool = True,
    say: Callable[[str], None] | None = None,
) -> Engine:
    """Return the engine rebuilt from snapshot + journal tail (see `recover_state`)."""
    return recover_state(instruments, journal, snapshots, verify, say).engine


@dataclass(slots=True)
class Outcomes:
    """Events recomputed for journaled commands (`replay_outcomes`)."""

    events: dict[int, list[Event]]  # seq -> the events its command made, as first answered
    start_seq: int  # the snapshot the replay started from (0: an empty engine)
    replayed: int  # commands applied
    seconds: float


def replay_outcomes(
    instruments: Iterable[InstrumentSpec],
    journal: Journal,
    snapshots: SnapshotStore | None,
    first: int,
    wanted: Collection[int] = (),
    verify: bool = True,
) -> Outcomes:
    """Recompute the events of the journaled command at seq `first` (and of `wanted` ones).

    The core is deterministic and the journal holds each command as it was applied (its seq
    and time stamped), so applying the journal to the state just before a command gives the
    events it gave the first time. The replay starts from the newest sound snapshot strictly
    before `first` (a snapshot at seq S holds the state after S), or from an empty engine
    when there is none, and runs through the highest of `first` and `wanted`; the events of
    every seq of `wanted` it passes are returned with `first`'s. Synchronous and possibly
    long (up to the snapshot spacing plus the span asked for): run it off the event loop.
    Raises ValueError when `first` is not in the journal.
    """
    started = time.perf_counter()
    specs = list(instruments)
    last = max(first, *wanted) if wanted else first
    if not 0 < first <= last <= journal.last_seq():
        raise ValueError(f"seqs {first}..{last} are not all in the journal "
                         f"(it ends at {journal.last_seq()})")
    engine, _ = latest_sound_snapshot(
        specs, journal, snapshots, verify,
        accept=lambda header: None if header.seq < first else "not before the command")
    if engine is None:
        engine = Engine(specs)
    start_seq = engine.last_seq
    keep = set(wanted)
    keep.add(first)
    found: dict[int, list[Event]] = {}
    replayed = 0
    for command in journal.read(start_seq + 1):
        events = engine.apply(command)
        replayed += 1
        if command.seq in keep:
            found[command.seq] = events
        if command.seq >= last:
            break
    if first not in found:
        raise ValueError(f"the journal ended before seq {first}")
    return Outcomes(found, start_seq, replayed, time.perf_counter() - started)
