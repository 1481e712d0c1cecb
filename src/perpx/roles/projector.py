"""The projector role: the history tables folded from the event bus in a process of its own.

`perpx serve --role projector --bus nats://... --bus-stream NAME --history LOCATION` follows
the venue's stream and folds every durable command's events into history tables of its own
(a SQLite file, or a PostgreSQL schema): final orders, executions, closed P&L, the
transaction log, closed candles and settled funding rates. It folds with the writer's own
fold (`perpx.readside.fold`, the one `ExchangeService` calls), from the same empty read
side (`readside.fresh`), so its rows are the rows the writer's process writes: every input
of the fold is in the events (each carries its seq and time), none comes from the engine.
Any number of projectors may follow one stream, each with its own tables.

Where it is, durably, is two things, both in its own database:

- **the rows and their watermark** (`history_meta`), committed in one transaction per
  batch: the watermark W is the last seq whose rows are all stored, the position the bus
  subscription resumes from, and the fence against writing a row twice;
- **a checkpoint of the read side** at some seq C <= W (`readside.capture`, in the
  tables' ``read_side``, every `checkpoint_every` commands or `checkpoint_seconds`, and on
  a clean stop): the fold's in-memory state (open orders and their fill totals, positions'
  entry values, open candles...), which the rows alone do not hold.

A restart (after a clean stop or a kill -9 anywhere) loads the newest usable checkpoint C,
subscribes from C + 1, folds C + 1 .. W again without writing (their rows are stored), then
writes from W + 1 on: the rows are those an uninterrupted projector would have written. A
checkpoint is usable as the writer's are: written by this code for this instrument table,
and loading (`readside.load`); without one the fold starts from seq 1.

It stops loudly, never skips: a hole in the stream (`GapError`: the seqs it needs were
pruned, or never published) ends the process with an error that names the missing seqs,
after committing what it folded before the hole; so does a stream that ends before the
projector's own rows (another venue's, or a replaced stream). A database that fails is
waited for (rows held back and retried, `SqlHistory`), not skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

from perpx import readside
from perpx.bus.base import EventBus
from perpx.bus.codec import EventBatch
from perpx.bus.consumer import follow
from perpx.core.instruments import InstrumentSpec
from perpx.readmodels import FundingHistory, Klines, Tickers
from perpx.readmodels.books import Books
from perpx.stopping import stop_task
from perpx.store.history import History, HistoryUnavailable
from perpx.store.records import Projector

log = logging.getLogger("perpx.projector")

CHECKPOINT_EVERY = 20_000  # commands between two read-side checkpoints
CHECKPOINT_SECONDS = 60.0  # and at most this long, if anything was folded meanwhile
CHECKPOINT_KEEP = 3
# How long a stopping projector may go on folding to the stream's end (`drain`): under the
# supervisor's `STOP_S` (10 s) before it kills a child, with room for the last checkpoint.
DRAIN_S = 5.0
# Commands folded and handed to the tables whose commit is not yet confirmed, at most (a few
# MB of rows): the batches handed over while a commit runs go in the next one together.
MAX_UNCOMMITTED = 4096


class ProjectorError(RuntimeError):
    """The projector cannot go on without losing or inventing rows (it stops, loudly)."""


class HistoryProjector:
    """Fold bus batches into history tables; a `perpx.bus.Projection` and a `readside.Owner`.

    `position()` is the seq the in-memory fold stands at (the checkpoint it started from,
    then each batch applied); rows are written only past `written`, the tables' committed
    watermark when it started, so re-folding the seqs between the two writes nothing.
    """

    def __init__(self, specs: list[InstrumentSpec], history: History, *,
                 checkpoint_every: int = CHECKPOINT_EVERY,
                 checkpoint_seconds: float = CHECKPOINT_SECONDS,
                 checkpoint_keep: int = CHECKPOINT_KEEP,
                 max_uncommitted: int = MAX_UNCOMMITTED,
                 say: Callable[[str], None] = log.info) -> None:
        self.specs: dict[str, InstrumentSpec] = {spec.symbol: spec for spec in specs}
        self.history = history
        self.checkpoint_every = checkpoint_every
        self.checkpoint_seconds = checkpoint_seconds
        self.checkpoint_keep = checkpoint_keep
        self.say = say
        empty = readside.fresh(specs)
        self.read_seq = 0
        self.projector: Projector = empty.projector
        self.tickers: Tickers = empty.tickers
        self.klines: Klines = empty.klines
        self.funding: FundingHistory = empty.funding
        self.books: Books = empty.books
        self._code = readside.fingerprint(specs)
        # Rows are stored up to here: the seqs up to it are folded again, never written.
        self.written = history.high_watermark
        self.checkpointed = self._restore()
        self._checkpoint_at = time.monotonic()
        # The flushes not yet settled, oldest first, each with the seq folded before its
        # batch (the commands it waits for are past that seq).
        self._inflight: deque[tuple[int, Future[None]]] = deque()
        self._handed_seq = self.read_seq
        self.max_uncommitted = max_uncommitted
        self.fault = ""  # why the in-memory read side is no longer a fold of the stream
        # Counters for operators, tests and `perpx bench projector`.
        self.batches = 0
        self.commands = 0
        self.events = 0
        self.refolded = 0  # commands folded again after a restart, without writing

    # -- start ------------------------------------------------------------------------------

    def _restore(self) -> int:
        """Install the newest usable read-side checkpoint at or below `written`; its seq."""
        for seq in self.history.checkpoint_seqs():
            if seq > self.written:  # never stored that way; refuse rather than skip rows
                self.say(f"projector: checkpoint {seq} is ahead of the rows ({self.written})")
                continue
            found = self.history.load_checkpoint(seq)
            if found is None:
                continue
            if found[0] != self._code:
                self.say(f"projector: checkpoint {seq} was written by other code: not used")
                continue
            try:
                readside.install(self, readside.load(self, found[1], seq))
            except readside.ReadSideError as bad:
                self.say(f"projector: checkpoint {seq} not used: {bad}")
                continue
            return seq
        return 0

    # -- the bus's Projection ---------------------------------------------------------------

    def position(self) -> int:
        """Return the seq the fold stands at (the subscription resumes after it)."""
        return self.read_seq

    def apply(self, batch: EventBatch) -> None:
        """Fold `batch`; hand its rows and watermark to the tables (one transaction)."""
        if self.fault:
            raise ProjectorError(f"the read side is unsound: {self.fault}")
        history = self.history
        written = self.written
        for entry in batch.entries:
            write = entry.seq > written
            try:
                readside.fold(self, entry, entry.events, history if write else None)
            except Exception as failure:
                # Half folded: no checkpoint may capture it, and the watermark stays below
                # this seq (as in the writer's process), so a restart refolds it.
                self.fault = f"folding seq {entry.seq} failed: {failure!r}"
                raise
            self.read_seq = entry.seq
            self.events += len(entry.events)
            if write:
                history.projected(entry.seq)
            else:
                self.refolded += 1
        self.written = max(written, self.read_seq)
        self.batches += 1
        self.commands += len(batch.entries)
        self._commit()
        if (self.read_seq - self.checkpointed >= self.checkpoint_every
                or time.monotonic() - self._checkpoint_at >= self.checkpoint_seconds):
            self.checkpoint()

    # -- writing ----------------------------------------------------------------------------

    def _commit(self) -> None:
        """Hand the batch's rows to the writer thread; settle the batches it has committed.

        Folding overlaps the database's commits, and the batches handed over while one
        commit runs share the next (`SqlHistory` commits whatever is queued in one
        transaction, and a commit's cost hardly depends on its rows). At most
        `max_uncommitted` commands wait for their commit: past that the projector waits,
        so a slow or failing database slows it down instead of filling its memory.
        """
        inflight = self._inflight
        inflight.append((self._handed_seq, self.history.flush()))
        self._handed_seq = self.read_seq
        while inflight and (inflight[0][1].done()
                            or self.read_seq - inflight[0][0] > self.max_uncommitted):
            self._settle(inflight.popleft()[1])

    def _settle(self, future: Future[None]) -> None:
        try:
            future.result()
            return
        except HistoryUnavailable as failure:
            self.say(f"projector: history write failed, retrying: {failure}")
        delay = 0.05
        while True:
            # The tables hold the rows back, in order; a flush retries them (and every batch
            # handed over since), so when one succeeds everything up to now is committed.
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            try:
                self.history.flush().result()
            except HistoryUnavailable:
                continue
            self._inflight.clear()  # that flush committed every row handed over before it
            self.say("projector: history writes resumed")
            return

    def sync(self) -> None:
        """Commit every row handed over so far (waiting out a failing database)."""
        self._inflight.clear()  # the flush below commits after them, or fails as they would
        self._settle(self.history.flush())

    def checkpoint(self) -> None:
        """Store the read side at `read_seq`, after the rows up to it are committed."""
        self._checkpoint_at = time.monotonic()
        if self.read_seq <= self.checkpointed or self.fault:
            return
        self.sync()
        try:
            self.history.save_checkpoint(self.read_seq, self._code, readside.capture(self),
                                         keep=self.checkpoint_keep)
        except Exception as failure:  # an optimisation only: the next one may succeed
            self.say(f"projector: checkpoint at {self.read_seq} failed: {failure!r}")
            return
        self.checkpointed = self.read_seq


async def drain(bus: EventBus, projector: HistoryProjector, following: asyncio.Future[int],
                drain_s: float, hurry: asyncio.Event | None = None) -> None:
    """Go on folding up to the stream's last seq as it is now, for at most `drain_s`.

    A stop asked of a projector means "stop at the end of the stream": `perpx serve` asks
    only once its writer has stopped and published its last batch, so the projector's rows
    end where the venue's do. Bounded (a projector far behind stops where it got to, and
    resumes from there on its next start); `hurry` (a second signal) ends it at once.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + drain_s
    try:
        target = await asyncio.wait_for(bus.last_seq(), drain_s)
    except Exception as failure:  # the bus is gone: nothing more will come from it anyway
        projector.say(f"projector: stopping without draining (the bus: {failure!r})")
        return
    while (projector.position() < target and not following.done()
           and (hurry is None or not hurry.is_set())):
        left = deadline - loop.time()
        if left <= 0:
            projector.say(f"projector: stopping at seq {projector.position()} before the "
                          f"stream's end ({target}): {drain_s:.0f} s passed")
            return
        await asyncio.wait({following}, timeout=min(left, 0.02))
    if projector.position() >= target:
        projector.say(f"projector: drained to the stream's end, seq {target}")


async def project(bus: EventBus, projector: HistoryProjector, *,
                  stop: asyncio.Event | None = None, until: int | None = None,
                  drain_s: float = 0.0, hurry: asyncio.Event | None = None) -> int:
    """Follow `bus` into `projector` until `stop` is set, `until` is reached, or a gap.

    With `drain_s`, a `stop` first folds up to the stream's last seq at that moment
    (`drain`, at most `drain_s`; `hurry` cuts it short). Commits and checkpoints what was
    folded before returning or raising; returns the seq reached. Raises `GapError` (a hole
    in the stream) or `ProjectorError` (the bus ends before the projector's rows, or ended
    the subscription).
    """
    last = await bus.last_seq()
    if 0 < last < projector.written:
        raise ProjectorError(
            f"the bus ends at seq {last} but this projector's rows reach seq "
            f"{projector.written}: the stream is not the one these tables were folded from "
            "(another venue's, or replaced); give the projector empty tables of its own")
    projector.say(f"projector: rows at seq {projector.written}, read side from checkpoint "
                  f"{projector.checkpointed}; following from seq {projector.position() + 1} "
                  f"(the bus is at {last})")
    following = asyncio.ensure_future(follow(bus, projector, until))
    stopping = asyncio.ensure_future((stop or asyncio.Event()).wait())
    try:
        await asyncio.wait({following, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if drain_s > 0 and stopping.done() and not following.done():
            await drain(bus, projector, following, drain_s, hurry)
    finally:
        stopping.cancel()
        if not following.done():
            await stop_task(following)  # cancelled again if 3.11's wait_for swallows it
        # Batches are folded whole between two awaits: what is folded is a clean prefix.
        projector.checkpoint()
        projector.sync()
    if following.cancelled():
        return projector.position()
    reached = following.result()  # raises the GapError, if that is what ended it
    if until is None or reached < until:
        # The subscription ended by itself: the connection to the bus was lost for good.
        raise ProjectorError(f"the bus ended the subscription at seq {reached} (connection "
                             "lost?); what was folded is committed: start the projector again")
    return reached
