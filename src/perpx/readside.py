"""The service's read side at one seq: captured beside each engine snapshot, restored at start.

The read side is everything the service folds from durable events: the history projector's
open and recent orders, positions and marks; the market read models (24-hour tickers, klines,
open interest, funding history); the book mirrors and tick directions the streams show (the
API's stream hub publishes from all of these and folds nothing of its own). None of it can
be rebuilt from the engine's state alone (a 24-hour window, candles, an order's cumulative
fees, closed orders), so it is
captured exactly, at the seq of the engine snapshot it belongs to: the snapshotter's forked
child folds the commands still in flight into its copy of the read side, so that both stand at
the same seq, and encodes it. A restart then loads both and replays only the journal's tail,
and gets the read side a full replay would have built, exactly.

Why data, not objects: the checkpoint lives in the history tables (the journal's database or
``history.db``), so whoever can write there chooses its bytes. A pickle would let them run code
on the host at the next start. A checkpoint is therefore MessagePack of explicit state records
(`ReadSideState`: integers, strings, lists, dicts and msgspec structs of those, each class's
`to_state()`), decoded by a typed msgspec decoder that builds nothing but those types; each
model's `from_state()` then checks what types cannot (known symbols, consistent indexes).

A checkpoint is used only if all of this holds, else it is refused with the reason and the
service starts from an older snapshot, or replays the whole journal (`load` raises
`ReadSideError`, never anything else):

- its header names this format and `VERSION` (1 and 2 were pickles, never read any more),
  the instrument table in force (`instruments_hash`) and the seq of its snapshot;
- the body decodes as `ReadSideState` with no field missing, unknown or of another type;
- every model accepts its state.

The table's fingerprint column (`fingerprint`) additionally hashes the source of the modules
whose folding shaped the state: not for safety (a forged checkpoint can carry any
fingerprint), but so that code with other folding rules never resumes from a read side that
its own replay would not have built.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import msgspec

from perpx.core.events import Event, InstrumentListed
from perpx.core.instruments import InstrumentSpec, spec_from_record
from perpx.readmodels import FundingHistory, Klines, Tickers, insurance
from perpx.readmodels.books import BookChanges, BookMirror, Books, BooksState
from perpx.readmodels.funding_history import FundingHistoryState, FundingSink
from perpx.readmodels.insurance import InsuranceSink
from perpx.readmodels.klines import CandleSink, KlinesState
from perpx.readmodels.tickers import TickersState
from perpx.rows import Stamp
from perpx.store.records import Projection, Projector, ProjectorState, RecordSink

FORMAT = "perpx-read-side"
# 1, 2: pickles (no longer read); 3: MessagePack of typed state records, the books under
# `hub`; 4: the same, the books under `books` (folded by the service, not by the stream hub);
# 5: no separate open interest (the service's is the tickers', folded once, kept in theirs);
# 6: the projector holds each position's opening fees and funding (`ProjectorState.costs`);
# 7: and each USDC position's true entry (`ProjectorState.true_entries`).
VERSION = 7
# Every module whose folding logic shaped a checkpoint's state (see `fingerprint`).
_MODULES = (
    "perpx.readside", "perpx.store.records", "perpx.readmodels.klines",
    "perpx.readmodels.tickers", "perpx.readmodels.open_interest",
    "perpx.readmodels.funding_history", "perpx.readmodels.period", "perpx.readmodels.books",
    "perpx.readmodels.insurance",
    # The tables hold what the checkpoint does not (closed candles, funding rates).
    "perpx.readmodels.candles", "perpx.store.history_sql", "perpx.rows",
    "perpx.core.events", "perpx.core.enums", "perpx.core.instruments",
)


class Owner(Protocol):
    """What holds a read side (the service, a projector): its instruments, models and seq.

    A protocol, so that this module needs nothing of the service that captures and restores
    through it.
    """

    specs: dict[str, InstrumentSpec]
    read_seq: int
    projector: Projector
    tickers: Tickers
    klines: Klines
    funding: FundingHistory
    books: Books


class ReadSideError(ValueError):
    """A checkpoint that cannot be used (foreign, corrupt, or of another version or table)."""


class Header(msgspec.Struct):
    """The fields every version's checkpoint starts with (others are ignored when reading it)."""

    format: str
    version: int
    instruments: str
    seq: int


class ReadSideState(msgspec.Struct, forbid_unknown_fields=True):
    """A whole read side as data: the header, then each model's `to_state()`."""

    format: str
    version: int
    instruments: str  # `instruments_hash` of the table it was folded with
    seq: int
    projector: ProjectorState
    tickers: TickersState  # with the open interest
    klines: KlinesState
    funding: FundingHistoryState
    books: BooksState


@dataclass(slots=True)
class ReadSide:
    """A read side rebuilt from a checkpoint, ready to `install`."""

    seq: int
    projector: Projector
    tickers: Tickers
    klines: Klines
    funding: FundingHistory
    books: Books
    # Contracts listed by the operator before the checkpoint (not in the configured table):
    # `install` makes them known to the service, as replaying their listing would.
    listed: tuple[InstrumentSpec, ...] = ()


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(ReadSideState)
_header_decoder = msgspec.msgpack.Decoder(Header)


def instruments_hash(specs: list[InstrumentSpec]) -> str:
    """Return the hash of the instrument table a checkpoint was folded with."""
    return hashlib.sha256(repr(sorted(specs, key=lambda spec: spec.symbol)).encode()).hexdigest()


def _source(module_name: str) -> str:
    """Return a module's source text, also when it runs compiled by mypyc (issue #14, item 7).

    A compiled module is an extension whose source sits beside it, so both builds of the
    core give one fingerprint and a checkpoint outlives switching between them.
    """
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        raise ReadSideError(f"no source for {module_name}")
    origin = Path(spec.origin)
    if origin.suffix != ".py":
        origin = origin.with_name(module_name.rpartition(".")[2] + ".py")
    # Universal newlines, as `inspect.getsource` reads it, so the fingerprint is unchanged.
    return origin.read_text(encoding="utf-8")


def fingerprint(specs: list[InstrumentSpec]) -> str:
    """Return the hash of the format, folding code and instruments a checkpoint is valid for."""
    digest = hashlib.sha256(f"{FORMAT}/{VERSION}".encode())
    for name in _MODULES:
        digest.update(_source(name).encode())
    digest.update(instruments_hash(specs).encode())
    return digest.hexdigest()


def state(service: Owner) -> ReadSideState:
    """Return the service's read side as it stands (at `service.read_seq`), as data."""
    return ReadSideState(
        FORMAT, VERSION, instruments_hash(list(service.specs.values())), service.read_seq,
        service.projector.to_state(), service.tickers.to_state(), service.klines.to_state(),
        service.funding.to_state(), service.books.to_state())


def capture(service: Owner) -> bytes:
    """Encode the service's read side as it stands (at `service.read_seq`)."""
    return _encoder.encode(state(service))


def _decode(body: bytes, seq: int, specs: list[InstrumentSpec]) -> ReadSideState:
    # The header first, so that another version is named as such rather than as bad data.
    try:
        header = _header_decoder.decode(body)
    except msgspec.DecodeError as bad:
        raise ReadSideError(f"read side at {seq} has no readable header: {bad}") from None
    if (header.format, header.version) != (FORMAT, VERSION):
        raise ReadSideError(f"read side at {seq} is {header.format!r} version "
                            f"{header.version}, not {FORMAT!r} version {VERSION}")
    if header.instruments != instruments_hash(specs):
        raise ReadSideError(f"read side at {seq} was folded with another instrument table")
    if header.seq != seq:
        raise ReadSideError(f"read side at {seq} holds seq {header.seq}")
    try:
        return _decoder.decode(body)
    except msgspec.DecodeError as bad:
        raise ReadSideError(f"read side at {seq} does not decode: {bad}") from None


def load(service: Owner, body: bytes, seq: int,
         listed: list[InstrumentSpec] | None = None) -> ReadSide:
    """Rebuild the read side the checkpoint `body` taken at `seq` holds, for `service`.

    The service lends its instruments and its models' bounds (klines in memory, funding
    kept or not) and is not touched; `listed` are the contracts listed before `seq` that the
    service does not know yet (the checkpoint was folded with them too). Raises
    `ReadSideError`, and only that, for a checkpoint that cannot be used, so the caller can
    try an older one.
    """
    specs = [*service.specs.values(), *(listed or ())]
    found = _decode(body, seq, specs)
    try:
        return ReadSide(
            seq, Projector.from_state(specs, found.projector),
            Tickers.from_state(specs, found.tickers),
            Klines.from_state(specs, found.klines, keep_closed=service.klines.keep_closed),
            FundingHistory.from_state(specs, found.funding, keep=service.funding.keep),
            Books.from_state(found.books, [spec.symbol for spec in specs]),
            tuple(listed or ()))
    except Exception as bad:  # whatever a model makes of a state it cannot hold: unusable
        raise ReadSideError(f"read side at {seq} does not fit: {bad!r}") from None


class Checkpoints:
    """Which engine snapshots a start may use: those whose read side it can load (one rule).

    Called with a snapshot's header (`perpx.store.recovery.latest_sound_snapshot`'s
    `accept`), it says why the snapshot is not usable, or None and keeps the read side it
    loaded in `loaded` (by seq), ready to `install`. Usable means: the history tables hold
    every row up to the snapshot (`watermark`, no gap), and its read side is stored, was
    written by this code and loads; a corrupt, foreign or hostile checkpoint refuses the
    snapshot (an older one, or a full replay, is tried) rather than stopping the start.
    The writer's service and an API gateway start alike through it.

    A checkpoint taken after the operator listed contracts was folded with them as well:
    `listed_at(seq)` names the contracts the engine snapshot at `seq` had listed (its
    `listed` records), so such a checkpoint is judged, and loaded, with them, and a restart
    from it keeps them without replaying the journal. It is asked only when the checkpoint
    does not fit the configured table alone.
    """

    def __init__(self, owner: Owner, history: CheckpointStore, watermark: int,
                 enabled: bool = True,
                 listed_at: Callable[[int], list[InstrumentSpec]] | None = None) -> None:
        self.owner = owner
        self.history = history
        self.watermark = watermark
        self.code = fingerprint(list(owner.specs.values()))
        self.stored = set(history.checkpoint_seqs()) if enabled else set()
        self.loaded: dict[int, ReadSide] = {}
        self.listed_at = listed_at

    def __call__(self, header: SnapshotHeader) -> str | None:
        """Return why the snapshot `header` is not usable, or None (its read side loaded)."""
        if header.seq > self.watermark:
            return (f"snapshot {header.seq} is ahead of the history tables "
                    f"(seq {self.watermark})")
        found = self.history.load_checkpoint(header.seq) if header.seq in self.stored else None
        if found is None:
            return f"snapshot {header.seq} has no read side"
        listed: list[InstrumentSpec] = []
        code = self.code
        if found[0] != code and self.listed_at is not None:
            try:
                listed = [spec for spec in self.listed_at(header.seq)
                          if spec.symbol not in self.owner.specs]
            except Exception as bad:  # an engine snapshot that does not decode: unusable
                return f"snapshot {header.seq}: its listed contracts do not load: {bad!r}"
            if listed:
                code = fingerprint([*self.owner.specs.values(), *listed])
        if found[0] != code:
            return f"snapshot {header.seq}: its read side was written by other code"
        try:
            self.loaded[header.seq] = load(self.owner, found[1], header.seq, listed)
        except ReadSideError as bad:
            return f"snapshot {header.seq}: {bad}"
        return None


class CheckpointStore(Protocol):
    """Where read-side checkpoints are kept (the history tables, `History`)."""

    def checkpoint_seqs(self) -> list[int]:
        """Return the seqs of the stored checkpoints."""

    def load_checkpoint(self, seq: int) -> tuple[str, bytes] | None:
        """Return (fingerprint, body) of the checkpoint at `seq`, if stored."""


class SnapshotHeader(Protocol):
    """The seq of an engine snapshot (`perpx.store.snapshots.SnapshotInfo`)."""

    @property
    def seq(self) -> int:
        """The snapshot's seq."""


def install(service: Owner, read_side: ReadSide) -> None:
    """Replace the service's read side with one `load` rebuilt.

    Whoever shares the models (the API's stream hub) must be built after this: the service
    installs a read side while it starts, before anyone can listen.
    """
    service.read_seq = read_side.seq
    for spec in read_side.listed:
        service.specs[spec.symbol] = spec
    service.projector = read_side.projector
    service.tickers = read_side.tickers
    service.klines = read_side.klines
    service.funding = read_side.funding
    service.books = read_side.books


def restore(service: Owner, body: bytes, seq: int) -> None:
    """Replace the service's read side with the checkpoint `body` taken at `seq`."""
    install(service, load(service, body, seq))


# -- the fold: one for the writer's process and for a projector fed by the bus ---------------

# Closed candles kept in memory per track: the streams' kline topic confirms the two closed
# before the open one; older ones are rows of the history tables.
KLINES_KEPT = 2


class Sink(RecordSink, CandleSink, FundingSink, InsuranceSink, Protocol):
    """Where the fold hands the history tables' rows (`perpx.store.history.History`)."""


def fresh(specs: list[InstrumentSpec]) -> ReadSide:
    """Return an empty read side at seq 0, with the bounds every owner keeps.

    Closed candles past `KLINES_KEPT` and settled funding rates live only in the history
    tables (the models hand them to the sink), so memory and checkpoints stay small.
    """
    return ReadSide(0, Projector(specs, sink=None), Tickers(specs),
                    Klines(specs, keep_closed=KLINES_KEPT), FundingHistory(specs, keep=False),
                    Books([spec.symbol for spec in specs]))


def _learn(owner: Owner, spec: InstrumentSpec) -> None:
    """Make a contract the operator listed known to every model (the projector learns its own).

    Checkpoints name the instrument table they were folded with, so one taken after a
    listing is refused by a service started on the table alone: it then replays the journal,
    which lists the contract again.
    """
    owner.specs[spec.symbol] = spec
    for model in (owner.tickers, owner.klines, owner.funding):
        model.specs[spec.symbol] = spec
    owner.books.mirrors[spec.symbol] = BookMirror(spec.symbol)


def fold(owner: Owner, stamp: Stamp, events: list[Event],
         sink: Sink | None) -> tuple[Projection, BookChanges]:
    """Fold one durable command's events into the owner's read side; return what changed.

    The one fold of the read side: the writer's process (`ExchangeService._project`) and a
    projector fed by the event bus (`perpx.roles.projector`) both call it, so their history
    rows are the same. `sink` takes the rows (None: fold only, e.g. while re-folding
    commands whose rows are already stored). The caller advances `owner.read_seq`.
    """
    owner.klines.sink = sink
    owner.funding.sink = sink
    if len(events) == 1 and type(events[0]) is InstrumentListed:  # a listing's only event
        _learn(owner, spec_from_record(events[0].record))
    # Each event once per model; the open interest is the tickers' own.
    owner.tickers.apply_all(events)
    owner.klines.apply_all(events)
    owner.funding.apply_all(events)
    # The insurance fund's changes: rows only, no state (`perpx.readmodels.insurance`), so
    # without a sink (a gateway's fold) not even its call.
    if sink is not None:
        insurance.fold(events, sink)
    owner.projector.sink = sink
    projection = owner.projector.project(stamp, events)
    return projection, owner.books.apply(stamp, events)
