"""The hot standby writer (issue #15, item 5): follow the journal, take over when the leader dies.

A standby opens the same journal as the leader, read-only, and folds every committed command
into its own engine as it appears (it polls: a SQLite WAL file on one machine, or a
PostgreSQL table; a poll every `poll_s` costs one indexed query). Meanwhile it watches the
journal's writer lock, the same lock that keeps two writers apart today: an exclusive
``flock`` on ``<journal>.lock`` for SQLite, a session advisory lock for PostgreSQL. Both are
released by the operating system or the database server when the leader's process dies, and
only then, so "the lock came free" is "the leader is gone". The standby then opens the journal
as its writer (which bumps the leader epoch: a zombie of the old leader can never commit
again, see `perpx.store.sqlite` and `perpx.store.postgres`), folds the last commands the
leader made durable, and hands the writer journal to whoever serves.

Two writers can never both accept commands: a writer must hold the lock to open the journal,
and every group commit checks the epoch it took with the lock. A standby that loses the race
for the lock (two standbys) simply goes on following.

The followed engine is the state of the journal at each moment it has read: `perpx serve
--role standby` checks that the service it builds at takeover (newest snapshot + the tail,
with the read side and the history tables, as any restart) hashes the same as the engine it
followed, a second and independent derivation of the state before it accepts anything.
That rebuild also refills the writer's window of recent request ids from the journal's tail
(`ExchangeService._recover`), so the gateways' resends of what the dead leader held in
flight are answered with its recorded outcome, not applied twice. The rebuild starts from a
snapshot, so the tail it replays may miss the last commands before one; the standby has
applied every command it followed, so it keeps the events of the last `RECENT_WINDOW`
request ids itself (`recorded`) and hands them over with the journal: the new writer's
window has every outcome the standby saw, with no replay at the resend (for one it did not
see, the writer replays, `Sequencer`).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from perpx.core.engine import Engine
from perpx.core.events import Event
from perpx.core.instruments import InstrumentSpec
from perpx.sequencer import RECENT_WINDOW
from perpx.store import open_journal, open_snapshots
from perpx.store.journal import Journal, JournalBusy, JournalMissing
from perpx.store.recovery import latest_sound_snapshot

POLL_S = 0.05

# (request id, seq, events) of a followed command that carried an id.
Recorded = tuple[bytes, int, list[Event]]


@dataclass(slots=True)
class Takeover:
    """What the standby holds when it becomes the leader."""

    journal: Journal  # the writer journal: the lock and a new leader epoch are held
    engine: Engine  # the followed engine, caught up to the journal's end
    waited_s: float  # from the start of the standby to the takeover
    took_s: float  # from the moment the lock was seen free to the writer journal caught up
    # The last request ids the standby followed, with their events, oldest first: for the
    # new writer's window (`ExchangeService(recorded=...)`).
    recorded: list[Recorded] = field(default_factory=list)


class Standby:
    """Follow the journal at `location` into an engine until the writer lock comes free."""

    def __init__(self, specs: list[InstrumentSpec], location: str, *,
                 poll_s: float = POLL_S, say: Callable[[str], None] = lambda line: None,
                 window: int = RECENT_WINDOW) -> None:
        self.specs = specs
        self.location = location
        self.poll_s = poll_s
        self.say = say
        self.engine = Engine(specs)
        self._reader: Journal | None = None
        self._window = window
        # request id -> (seq, events) of the followed commands that carried one, oldest first.
        self._recent: OrderedDict[bytes, tuple[int, list[Event]]] = OrderedDict()

    @property
    def recorded(self) -> list[Recorded]:
        """The last request ids followed, with their seq and events, oldest first."""
        return [(rid, seq, events) for rid, (seq, events) in self._recent.items()]

    def _fold(self, journal: Journal) -> int:
        """Apply every command after the engine's seq; keep the outcomes of their ids."""
        start = self.engine.last_seq + 1
        # The events of the last `window` commands applied, whichever carry an id: the ids
        # are read after the commands, so that none committed in between is paired wrongly
        # (an id past what was applied is read again by the next fold).
        applied: deque[tuple[int, list[Event]]] = deque(maxlen=self._window)
        for command in journal.read(start):
            applied.append((command.seq, self.engine.apply(command)))
        if not applied:
            return 0
        events = dict(applied)
        recent = self._recent
        for seq, rid in journal.request_ids(applied[0][0]):
            if seq in events:
                recent[rid] = (seq, events[seq])
                if len(recent) > self._window:
                    recent.popitem(last=False)
        return self.engine.last_seq - start + 1

    def _open_reader(self) -> Journal | None:
        """Open the follower's read-only journal once there is one, from the newest snapshot."""
        if self._reader is not None:
            return self._reader
        try:
            reader = open_journal(self.location, readonly=True)
        except JournalMissing:
            return None  # no leader has written yet
        try:
            snapshots = open_snapshots(self.location, readonly=True)
        except JournalMissing:
            snapshots = None
        try:
            engine, _ = latest_sound_snapshot(self.specs, reader, snapshots, say=self.say)
        finally:
            if snapshots is not None:
                snapshots.close()
        if engine is not None:
            self.engine = engine
        self._reader = reader
        return reader

    def follow(self) -> int:
        """Fold every command committed since the last call; return how many."""
        reader = self._open_reader()
        return self._fold(reader) if reader is not None else 0

    def _leader_alive(self) -> bool:
        reader = self._reader
        if reader is None:
            return False
        alive: Callable[[], bool] | None = getattr(reader, "writer_alive", None)
        return alive() if alive is not None else True

    def try_lead(self) -> Journal | None:
        """Open the journal as its writer if no one holds the lock; None if someone does."""
        if self._leader_alive():
            return None
        try:
            # No wait: a live leader (or a standby faster than us) keeps the lock.
            return open_journal(self.location, lock_wait_s=0)
        except JournalBusy:
            return None

    def run(self, stop: Callable[[], bool] = lambda: False) -> Takeover | None:
        """Follow until the leader is gone; return the takeover (None if `stop()` said so)."""
        started = time.monotonic()
        following = -1
        while not stop():
            self.follow()
            if self._reader is not None and following < 0:
                following = self.engine.last_seq
                self.say(f"standby: following the journal at seq {following}")
            seen_free = time.monotonic()
            journal = self.try_lead()
            if journal is not None:
                # Whatever the leader made durable before it died is in the journal now (the
                # epoch bump waited for its last batch): fold it through the writer's own
                # connection, which sees every committed row.
                self._fold(journal)
                if self._reader is not None:
                    self._reader.close()
                    self._reader = None
                if journal.last_seq() != self.engine.last_seq:
                    journal.close()
                    raise RuntimeError(f"standby engine at seq {self.engine.last_seq}, "
                                       f"journal at {journal.last_seq()}")
                now = time.monotonic()
                return Takeover(journal, self.engine, now - started, now - seen_free,
                                self.recorded)
            time.sleep(self.poll_s)
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        return None
