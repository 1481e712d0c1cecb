"""The live exchange: engine, sequencer, read models, price feeds and a market maker together.

`ExchangeService` is what `perpx serve` runs and what the API talks to. Every change goes
through `submit`, i.e. through the sequencer: applied to the writer's engine at once,
journaled, acknowledged once durable. Reads never look at the writer's engine (it is ahead
of the journal by up to one group commit): books, positions, wallets and margin come from
`durable` (`perpx.durable`: a follower engine that applies a command only once it is
durable), orders, trades, tickers and candles from the read models folded from durable
commands. Both are folded before the command is acknowledged, so a caller reads its own
writes; `acked_seq` is the last seq acknowledged to an account, for readers that must wait
for the projection to pass it (`DurableState.wait_for`). The built-in market maker is one
more client of the sequencer, on its own accounts (one per symbol, below the API keys'
account ids).
The service imports nothing of the API: whoever publishes from the read side (the API's
stream hub) registers with `listen` and is told of each durable command once it is folded.

On start the service rebuilds from the newest snapshot it can use, then the journal's tail:
a snapshot is usable when it is sound (`perpx.store.recovery`), the history tables have
been written at least up to its seq, and the read side captured with it was written by this
code and loads (`perpx.readside`: a corrupt, foreign or hostile one is refused with a log
line, never run and never fatal). Without one, it replays the whole journal into a fresh
engine. The tail is re-projected into the history tables past their high watermark. A
history newer than the journal (the journal was lost, e.g. the in-memory journal of a
restarted server) is emptied first. With a snapshot store, a `Snapshotter` snapshots the
engine and the read side every `snapshot_every` durable commands and/or `snapshot_seconds`.

Snapshots, checkpoints and history writes are side tasks: their failures are logged and
retried (see `Snapshotter`, `SqlHistory`) and never cost a command its answer. The read side
is checkpointed only while it is a fold of the journal: if projecting a durable command
fails, the read side is marked unsound (`read_side_fault`), snapshots stop and the history
tables take no more rows (their watermark stays below that command), so the next start
rebuilds from an older checkpoint or the whole journal instead of keeping what went wrong.

Writer only (`read_side=False`, issue #15 item 1: `perpx serve --gateways N --projectors M`):
nobody reads this process (its gateways serve the API from their own journal followers, and
projector 0 writes the history tables they read), so it only sequences, applies, journals,
acknowledges and publishes. It keeps no read side and no durable follower, writes no
history rows, and its snapshots carry no read side (they wait for nothing): its start uses
the newest sound snapshot and the journal's tail, whatever any history holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from perpx import readside
from perpx.adl import AdlIndicators
from perpx.bus.codec import Durable
from perpx.bus.publisher import BusPublisher
from perpx.convert import ConversionError, format_ticks, to_atoms, to_ticks
from perpx.core.commands import Command, Deposit, IndexPrice, SetVenueParams, Tick
from perpx.core.engine import Engine
from perpx.core.events import CommandRejected, Event
from perpx.core.instruments import InstrumentSpec
from perpx.durable import DurableState, Watermark
from perpx.feeds import CandleReplay, IndexObservation, RandomWalkFeed
from perpx.readmodels import OpenInterest
from perpx.sequencer import (
    RECENT_WINDOW,
    Sequencer,
    SequencerStopped,
    wall_clock_ms,
)
from perpx.sim.agents import MarketMaker, MarketView
from perpx.stopping import stop_task
from perpx.store import open_journal
from perpx.store.history import History
from perpx.store.history_sqlite import SqliteHistory
from perpx.store.journal import Journal, OutcomeNotKept, new_request_id
from perpx.store.recovery import (
    Recovery,
    latest_sound_snapshot,
    listed_in_snapshot,
    replay_outcomes,
)
from perpx.store.snapshots import SnapshotStore
from perpx.store.snapshotter import SnapshotResult, Snapshotter
from perpx.venue import Listener, ServiceStopped

__all__ = ["ExchangeService", "Listener", "ServiceStopped", "open_service_journal"]

log = logging.getLogger("perpx.service")

MAKER_ACCOUNT_BASE = 1  # market-maker accounts 1, 2, 3, ... one per symbol
START_PRICES = {"BTCUSDT": "65000", "ETHUSDT": "3500", "SOLUSDT": "150", "BTCUSD": "65000",
                "ETHUSD": "3500", "BTCPERP": "65000", "ETHPERP": "3500"}
# The demo market maker's quote size and deposit where the defaults (3 of the quantity unit,
# 20,000,000 of the settle coin) do not fit: an inverse quantity is in USD contracts, and its
# margin is in the base coin.
MAKER_SIZES = {"BTCUSD": ("200000", "1000"), "ETHUSD": ("10000", "20000")}  # level qty, deposit


def open_service_journal(data_dir: str | Path, url: str | None = None) -> Journal:
    """Open the service's journal: `url` if given, else SQLite at DATA/journal.db."""
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    return open_journal(url if url is not None else str(Path(data_dir) / "journal.db"))


def _maker(account_id: int, symbol: str) -> MarketMaker:
    sizes = MAKER_SIZES.get(symbol)
    if sizes is None:
        return MarketMaker(account_id, symbol)
    return MarketMaker(account_id, symbol, level_qty=sizes[0], deposit=sizes[1])


def _walk(spec: InstrumentSpec, start_price: str, seed: int) -> Iterator[IndexObservation]:
    return iter(RandomWalkFeed(spec.symbol, spec.tick_size, start_price, start_ms=0,
                               step_ms=1000, volatility=0.5, seed=seed))


class ExchangeService:
    """Own the engine, the sequencer, the read models, the feed and the market maker."""

    # How long a snapshot waits for the history tables to commit its seq before storing its
    # read side anyway (a restart then skips it until the tables have caught up).
    checkpoint_wait_s = 10.0

    def __init__(self, instruments: Iterable[InstrumentSpec], journal: Journal, *,
                 history: History | None = None, clock: Callable[[], int] = wall_clock_ms,
                 maker: bool = True, replay: str | Path | None = None,
                 replay_symbol: str = "BTCUSDT", feed_interval_s: float = 1.0,
                 seed: int = 7, snapshots: SnapshotStore | None = None,
                 snapshot_every: int = 0, snapshot_seconds: float = 0.0,
                 snapshot_keep: int = 3,
                 on_snapshot: Callable[[str], None] | None = None,
                 demo: bool = True, bus: BusPublisher | None = None,
                 venue_params: dict[str, Any] | None = None,
                 recorded: Iterable[tuple[bytes, int, list[Event]]] = (),
                 read_side: bool = True) -> None:
        specs = list(instruments)
        # False: the writer only (see the module's doc); `history` is then never written.
        self.read_side = read_side
        # The operator's configured parameters (`Config.venue_params`): put in force by one
        # journaled `SetVenueParams` at start when the recovered venue's differ (issue #17).
        self.venue_params = venue_params or {}
        self.demo = demo  # False in production: no demo funds, no demo-apply-money
        # The processes `perpx serve` supervises for this venue (projectors), as
        # `/perpx/status` shows them; None when it runs none.
        self.process_status: Callable[[], dict[str, Any]] | None = None
        # Run last by `close`, once the writer has stopped and the bus holds every durable
        # command it will ever publish: `perpx serve` stops those processes then, so that each
        # projector folds the venue's final batches before it stops (uvicorn re-raises
        # SIGTERM once its shutdown, which closes the service, is done).
        self.on_closed: list[Callable[[], Awaitable[None]]] = []
        self.specs: dict[str, InstrumentSpec] = {spec.symbol: spec for spec in specs}
        self.clock = clock
        self.history: History = history if history is not None else SqliteHistory(None)
        # Closed candles and settled funding rates are rows of the history tables: memory
        # (and the read-side checkpoint) keeps the open candles, and the two closed before
        # them that the streams' kline topic confirms (the hub shares these models).
        empty = readside.fresh(specs)  # the bounds every read side keeps, one place
        self.projector = empty.projector
        self.tickers = empty.tickers
        self.klines = empty.klines
        self.funding = empty.funding
        self.books = empty.books
        self._listeners: list[Listener] = []
        self.read_seq = 0  # the last command folded into the read side
        self.read_side_fault = ""  # why the read side is no longer a fold of the journal
        self.fatal: BaseException | None = None
        self.stopped = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._flush_scheduled = False
        self._funding_accounts: set[int] = set()
        self._feed_interval_s = feed_interval_s
        self._snapshots = snapshots
        self._on_snapshot = on_snapshot
        self.recovery = self._recover(specs, journal, snapshots)
        # What reads see: the recovered engine is all durable, so the follower starts from it.
        # The writer only has none (nobody reads it, and it would hold a second copy of the
        # engine): reading `durable` or `adl` there fails rather than show a stale state.
        self.durable: DurableState
        self.adl: AdlIndicators
        if read_side:
            self.durable = DurableState(self.engine)
            # The positions' ADL indicators, ranked at most once a second (REST and streams).
            self.adl = self.durable.adl
        # Readable up to here (the writer only: durable up to here), for `settled`.
        self._readable = self.durable.watermark if read_side else Watermark(self.engine.last_seq)
        self._acked: dict[int, int] = {}  # account -> the last seq acknowledged to it
        # A resend of a command journaled at or before the snapshot the recovery started
        # from has no events in the window: they are recomputed by replay when asked.
        self.sequencer = Sequencer(self.engine, journal, clock,
                                   recompute=functools.partial(self._outcomes, specs))
        # `recorded`: the outcomes a hot standby kept while it followed the journal (it
        # applied every command, so it has those the recovery's tail, which starts from a
        # snapshot, did not replay); the same engine, so the same events (and the takeover
        # checks that the two states hash the same before anything is served).
        followed = {rid: (seq, events) for rid, seq, events in recorded}
        for rid, seq, events in self._recorded:
            if events is None and followed.get(rid, (0, None))[0] == seq:
                events = followed[rid][1]
            self.sequencer.remember(rid, seq, events)
        del self._recorded
        if read_side:
            self.sequencer.subscribe(self._on_durable)
        else:  # one call a durable batch: the writer only folds nothing
            self.sequencer.subscribe_entries(self._on_durable_only)
        # The event bus (issue #15): each durable command's events go on it, never waited for.
        self.bus = bus
        if bus is not None:
            bus.follow(self.engine.last_seq)  # republish what the bus missed before a restart
            # The sequencer's entries themselves: their msgpack is the command's reply's too.
            self.sequencer.subscribe_entries(bus.on_entries)
        self.snapshotter: Snapshotter | None = None
        if snapshots is not None and (snapshot_every or snapshot_seconds):
            if not hasattr(os, "fork"):
                # The read side is folded forward in a forked copy of the process only.
                log.warning("no os.fork on this platform: snapshots are off")
            else:
                self.snapshotter = Snapshotter(
                    self.engine, snapshots, lambda: self.sequencer.durable_seq,
                    every_commands=snapshot_every, every_seconds=snapshot_seconds,
                    keep=snapshot_keep, fork=True,
                    extra=self._read_side_in_child if read_side else None,
                    save_extra=self._save_read_side if read_side else None,
                    on_storing=self._snapshot_storing, on_stored=self._snapshot_stored)
                self.sequencer.subscribe(self.snapshotter)
        self.makers = [_maker(MAKER_ACCOUNT_BASE + i, spec.symbol)
                       for i, spec in enumerate(specs)] if maker else []
        self._feeds = self._build_feeds(replay, replay_symbol, seed)

    def listen(self, listener: Listener) -> None:
        """Tell `listener` of every durable command from now on (see `Listener`)."""
        self._listeners.append(listener)

    @property
    def open_interest(self) -> OpenInterest:
        """The open interest model: the tickers' own (folded once, with them)."""
        return self.tickers.open_interest

    # -- recovery and projection ----------------------------------------------------------

    def _recover(self, specs: list[InstrumentSpec], journal: Journal,
                 snapshots: SnapshotStore | None) -> Recovery:
        started = time.perf_counter()
        usable: readside.Checkpoints | None = None
        watermark = 0
        if self.read_side:
            if self.history.high_watermark > journal.last_seq():
                log.warning("history is ahead of the journal (seq %d > %d): rebuilding it",
                            self.history.high_watermark, journal.last_seq())
                self.history.reset()
            # A snapshot is usable with its read side only (`readside.Checkpoints`).
            watermark = self.history.high_watermark
            usable = readside.Checkpoints(
                self, self.history, watermark, snapshots is not None,
                listed_at=functools.partial(listed_in_snapshot, snapshots) if snapshots
                else None)
        # The writer only asks nothing of any history: the newest sound snapshot will do.
        engine, rejected = latest_sound_snapshot(specs, journal, snapshots, say=log.warning,
                                                 accept=usable)
        self.engine = engine if engine is not None else Engine(specs)
        snapshot_seq = self.engine.last_seq
        if usable is not None:
            if engine is not None:
                readside.install(self, usable.loaded[snapshot_seq])
            usable.loaded.clear()
        # The request ids of the journal's tail, for the sequencer's window (a resent command
        # is answered with its recorded outcome): events for those the tail replays below;
        # those at or before the snapshot get theirs by replay if resent (`_outcomes`).
        last = journal.last_seq()
        ids = journal.request_ids(max(1, last - RECENT_WINDOW + 1))
        by_seq = {seq: rid for seq, rid in ids}
        self._recorded: list[tuple[bytes, int, list[Event] | None]] = [
            (rid, seq, None) for seq, rid in ids if seq <= snapshot_seq]
        replayed = 0
        for command in journal.read(self.engine.last_seq + 1):
            events = self.engine.apply(command)
            if usable is not None:
                self._project(command, events, write=command.seq > watermark)
            replayed += 1
            rid = by_seq.get(command.seq)
            if rid is not None:
                self._recorded.append((rid, command.seq, events))
        if usable is not None:
            self.history.flush().result()
        return Recovery(self.engine, snapshot_seq, replayed, time.perf_counter() - started,
                        rejected)

    def _outcomes(self, specs: list[InstrumentSpec], seq: int, more: list[int]
                  ) -> dict[int, list[Event]]:
        """Return the events of the journaled command at `seq` (and of `more`), by replay.

        The sequencer's `recompute`, run in a worker thread for a resend whose outcome the
        recovery did not recompute: `replay_outcomes` from the newest snapshot before `seq`
        with the configured instruments (`specs`, as `_recover` starts from), on the
        writer's own journal and snapshot store (both guard their connections with a lock).
        """
        outcomes = replay_outcomes(specs, self.sequencer.journal, self._snapshots, seq, more)
        log.warning("recomputed the outcome of seq %d for a resend (with %d more): %d "
                    "commands replayed from snapshot %d in %.3f s", seq, len(outcomes.events) - 1,
                    outcomes.replayed, outcomes.start_seq, outcomes.seconds)
        return outcomes.events

    def _project(self, command: Command, events: list[Event], *, write: bool) -> None:
        projection, books = readside.fold(self, command, events,
                                          self.history if write else None)
        for listener in self._listeners:
            listener(command, events, projection, books)
        self.read_seq = command.seq
        if write:
            self.history.projected(command.seq)

    def _on_durable(self, command: Command, events: list[Event]) -> None:
        try:
            # The follower first: the listeners' position and wallet rows read it at this seq.
            self.durable.fold(command)
        except Exception as failure:
            self._read_side_failed(command.seq, failure)
        try:
            # Once unsound, nothing more is written to the history tables (rows folded from
            # a wrong state would outlive the restart) and their watermark stays below the
            # failed command: the next start re-projects everything from there.
            self._project(command, events, write=not self.read_side_fault)
        except Exception as failure:
            self._read_side_failed(command.seq, failure)
        # Readable up to this seq now (the sequencer acknowledges the command after this).
        self.durable.published(command.seq)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_history)

    def _on_durable_only(self, entries: list[Durable]) -> None:
        """Say the batch is durable (`settled` waits on it): the writer only folds nothing."""
        self._readable.advance(entries[-1].seq)

    def _read_side_failed(self, seq: int, failure: Exception) -> None:
        log.error("projecting seq %d failed: the read side is unsound until a restart",
                  seq, exc_info=failure)
        if not self.read_side_fault:
            self.read_side_fault = f"projecting seq {seq} failed: {failure!r}"
            if self.snapshotter is not None:
                # A snapshot without its read side is no use to a restart, and taking one
                # would prune the older snapshots that still have theirs.
                self.snapshotter.disable(self.read_side_fault)

    def _flush_history(self) -> None:
        self._flush_scheduled = False
        try:
            self.history.flush()
        except Exception:  # the rows stay queued and go with the next flush
            log.exception("handing rows to the history writer failed")

    # -- snapshots --------------------------------------------------------------------------

    def _read_side_in_child(self) -> bytes:
        """Fold the commands in flight into the forked child's read side; encode it.

        Runs only in the snapshot's forked child, on its copy-on-write image of the process:
        the live read side in the parent is untouched, and nothing is published (the child
        tells no listener: it has no connections worth writing to) or written to the history
        tables.
        """
        if self.read_side_fault:
            raise RuntimeError(f"the read side is unsound: {self.read_side_fault}")
        self._listeners = []
        for command, events in self.sequencer.applied_after(self.read_seq):
            self._project(command, events, write=False)
        if self.read_seq != self.engine.last_seq:
            raise RuntimeError(f"read side at {self.read_seq}, engine at {self.engine.last_seq}")
        return readside.capture(self)

    def _save_read_side(self, seq: int, body: bytes) -> None:
        if self.read_side_fault:
            raise RuntimeError(f"the read side is unsound: {self.read_side_fault}")
        # The snapshot is usable once the history tables have committed its seq.
        deadline = time.monotonic() + self.checkpoint_wait_s
        while self.history.high_watermark < seq and time.monotonic() < deadline:
            time.sleep(0.002)
        self.history.save_checkpoint(seq, readside.fingerprint(list(self.specs.values())),
                                     body, keep=self.snapshotter.keep if self.snapshotter
                                     else 3)

    def _snapshot_storing(self, seq: int) -> None:
        if self._on_snapshot is not None:
            self._on_snapshot(f"snapshot {seq} storing")

    def _snapshot_stored(self, result: SnapshotResult) -> None:
        # A failure is logged by the snapshotter itself.
        if self._on_snapshot is not None:
            self._on_snapshot(f"snapshot {result.seq} stored {result.nbytes} bytes, writer "
                              f"paused {result.pause_s * 1000:.1f} ms, "
                              f"{result.total_s:.2f} s in all {result.error}".rstrip())

    # -- writes ---------------------------------------------------------------------------

    def submit(self, command: Command, request_id: bytes | None = None
               ) -> Coroutine[Any, Any, list[Event]]:
        """Sequence, apply and journal `command`; return its events once durable (awaited).

        A request from the API: it is journaled with `request_id` (a gateway's, which a
        retry after a failover resends), or with a fresh one (`new_request_id`). A request id
        the writer has seen recently is answered with its recorded events (`Sequencer`).
        `_submit`'s coroutine itself, not one more wrapped around it (one frame per order).
        """
        return self._submit(command, request_id or new_request_id())

    async def _submit(self, command: Command, request_id: bytes | None) -> list[Event]:
        """`submit`; the writer's own commands (feeds, makers) carry no request id."""
        if self.fatal is not None:
            raise ServiceStopped("the service has stopped") from self.fatal
        try:
            # The sequencer's future itself (`submit` would only wrap it in one more
            # coroutine per command).
            events = await self.sequencer.submit_nowait(command, request_id)
        except OutcomeNotKept:
            raise  # a resend whose outcome this writer cannot tell: not a failure of its own
        except Exception as failure:
            raise self._stopping(failure) from failure
        self._ack(command, events)
        return events

    async def submit_all(self, commands: Sequence[Command],
                         request_ids: Sequence[bytes | None] | None = None
                         ) -> list[list[Event]]:
        """Apply `commands` one after the other now; return their events once all are durable.

        `submit_entries`, each command's events only.
        """
        return [entry.events for entry in await self.submit_entries(commands, request_ids)]

    async def submit_entries(self, commands: Sequence[Command],
                             request_ids: Sequence[bytes | None] | None = None
                             ) -> list[Durable]:
        """Apply `commands` one after the other now; return their entries once all are durable.

        Each is applied before the next is (`Sequencer.submit_all` applies them at once, in
        their order, with nothing of another request between them), each with its request id
        (a gateway's, `CommandEndpoint`) or a fresh one, and all are journaled by the same
        group commits and answered by one future: a batch request costs the rounds of one
        command, not one each. A batch resent with the same ids is answered from the window
        for the commands already applied, and the rest are applied, still in order (the
        journaled ones are a prefix). An entry is the bus's (`perpx.bus.codec.Durable`), the
        same object the bus publisher queues: the writer's endpoint answers from it, so its
        events are encoded once for the reply and the bus (`Wire.ok_entry`).
        """
        if self.fatal is not None:
            raise ServiceStopped("the service has stopped") from self.fatal
        ids = request_ids or [None] * len(commands)
        try:
            outcomes = await self.sequencer.submit_all_nowait(
                commands, [rid or new_request_id() for rid in ids])
        except OutcomeNotKept:
            raise  # a resend whose outcome this writer cannot tell (see `submit`)
        except Exception as failure:
            raise self._stopping(failure) from failure
        self._ack_all(commands, [entry.events for entry in outcomes])
        return outcomes

    def _stopping(self, failure: Exception) -> ServiceStopped:
        """Stop the service for what the sequencer raised; return what `submit` raises then."""
        if isinstance(failure, SequencerStopped):
            self._stop(self.sequencer.failure or failure)
        else:
            # An exception out of the core is a broken invariant (DESIGN): stop the service.
            self._stop(failure)
        return ServiceStopped("the service has stopped")

    def _ack(self, command: Command, events: list[Event]) -> None:
        """Record the command's seq as acknowledged to its account (read-your-writes)."""
        if events:
            account_id = getattr(command, "account_id", None)
            # Every event of a command carries its seq (a refused one: its rejection).
            if account_id is not None and self._acked.get(account_id, 0) < events[0].seq:
                self._acked[account_id] = events[0].seq

    def _ack_all(self, commands: Sequence[Command], outcomes: Sequence[list[Event]]) -> None:
        """`_ack` each command with its events."""
        for command, events in zip(commands, outcomes, strict=True):
            self._ack(command, events)

    async def settled(self) -> None:
        """Wait until every command the writer has applied so far is durable and readable.

        For an answer drawn from the writer's own state (a write found to be a no-op): it
        must not be given while that state holds commands a crash could still erase.
        """
        await self._readable.wait_for(self.engine.last_seq)

    async def caught_up(self, account_id: int) -> None:
        """Return once reads show every write acknowledged to `account_id` (read-your-writes).

        At once in this process: the read side folds a batch before it is acknowledged.
        """
        await self._readable.wait_for(self.acked_seq(account_id))

    def acked_seq(self, account_id: int) -> int:
        """Return the last seq acknowledged to `account_id` (0: none since the start)."""
        return self._acked.get(account_id, 0)

    def _stop(self, failure: BaseException) -> None:
        if self.fatal is None:
            log.critical("stopping the service: %r", failure)
            self.fatal = failure
        self.stopped.set()

    async def ensure_funded(self, account_id: int, demo_funds: str) -> None:
        """Credit a key's demo funds once, when its account has no wallet yet (demo mode)."""
        if not self.demo or account_id in self._funding_accounts or not demo_funds:
            return
        if self.engine.clearing.account(account_id) is not None:
            self._funding_accounts.add(account_id)
            return
        try:
            amount = to_atoms(demo_funds)
        except ConversionError:
            return
        if amount <= 0:
            return
        self._funding_accounts.add(account_id)
        await self.submit(Deposit(0, 0, account_id, "USDT", amount))

    async def fund_for_gateway(self, account_id: int, demo_funds: str) -> None:
        """`ensure_funded`, answered once the deposit is durable (a gateway's request).

        A request that finds the deposit already started by another (another gateway's)
        waits for it too, so the seq its gateway is answered with covers it.
        """
        await self.ensure_funded(account_id, demo_funds)
        await self.settled()

    def now_ms(self) -> int:
        """Return the service clock, never behind the engine's last command."""
        return max(self.clock(), self.engine.last_ts_ms)

    # -- feeds and market maker -----------------------------------------------------------

    def _build_feeds(self, replay: str | Path | None, replay_symbol: str,
                     seed: int) -> dict[str, Iterator[IndexObservation]]:
        feeds: dict[str, Iterator[IndexObservation]] = {}
        walks: dict[str, int] = {}  # base coin -> its walk: one index per coin (BTCUSD = BTCUSDT)
        for number, spec in enumerate(self.specs.values()):
            number = walks.setdefault(spec.base_coin, number)
            if replay is not None and spec.symbol == replay_symbol:
                feeds[spec.symbol] = iter(CandleReplay(replay, spec.symbol, spec.tick_size,
                                                       step_ms=1000))
                continue
            last = self.engine.index_price.get(spec.symbol)
            # After a restart the walk continues from the last index price.
            # A dated future follows its base coin's index (BTCUSDT-25DEC26: BTCUSDT's).
            start_price = (START_PRICES.get(spec.symbol) or START_PRICES.get(
                f"{spec.base_coin}{spec.quote_coin}", "100") if last is None
                else format_ticks(spec, last))
            feeds[spec.symbol] = _walk(spec, start_price, seed + number)
        return feeds

    async def apply_venue_params(self) -> bool:
        """Journal one `SetVenueParams` if the configured parameters differ from the venue's.

        Run before any traffic (and before the makers' setup). Journaled rather than read
        from the process's configuration, so followers, standbys, gateways, projectors,
        replays and audits all apply the same parameters at the same seq. Returns whether a
        command was needed; a refusal (the config was checked at load, so a bug) stops.
        """
        if not self.venue_params:
            return False
        current = self.engine.current_venue_params()
        wanted = {**current, **self.venue_params}
        if wanted == current:
            return False
        events = await self.submit(SetVenueParams(0, 0, wanted))
        refused = [e for e in events if isinstance(e, CommandRejected)]
        if refused:
            raise ValueError(f"the configured venue parameters were refused: {refused[0].detail}")
        return True

    async def start(self) -> None:
        """Set up the market makers and start the feed loop."""
        if self.bus is not None:
            self.bus.start()  # catches the bus up to the journal even before any command
        await self.apply_venue_params()
        view = MarketView(self.engine)
        for maker in self.makers:
            for command in maker.setup(view):
                if isinstance(command, Deposit) and \
                        self.engine.clearing.account(command.account_id) is not None:
                    continue  # funded in an earlier run (durable journal)
                await self._submit(command, None)
        await self.step()
        self._tasks.append(asyncio.create_task(self._feed_loop(), name="perpx-feed"))
        if self.snapshotter is not None and self.snapshotter.every_seconds > 0:
            self._tasks.append(asyncio.create_task(self.snapshotter.periodic(),
                                                   name="perpx-snapshots"))

    async def step(self) -> None:
        """One feed step: a new index price per symbol, a Tick, then the makers' quotes."""
        futures: list[asyncio.Future[list[Event]]] = []
        for symbol, feed in self._feeds.items():
            observation = next(feed, None)
            if observation is None:
                continue  # a replay that ended keeps its last price
            spec = self.specs[symbol]
            await self._submit(IndexPrice(0, 0, symbol, to_ticks(spec, observation.price)),
                               None)
        await self._submit(Tick(0, 0), None)
        view = MarketView(self.engine)
        now = self.now_ms()
        for maker in self.makers:
            for command in maker.act(view, now):
                futures.append(asyncio.ensure_future(self._submit(command, None)))
        if futures:
            await asyncio.gather(*futures)

    async def _feed_loop(self) -> None:
        while self.fatal is None:
            await asyncio.sleep(self._feed_interval_s)
            try:
                await self.step()
            except ServiceStopped:
                return
            except Exception as failure:  # a feed error must not pass silently
                log.exception("feed step failed")
                self._stop(failure)
                return

    async def close(self) -> None:
        """Stop the feed, finish journal writes and publishing, close the history."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            await stop_task(task)  # cancelled again if 3.11's wait_for swallows it
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.sequencer.close()
        if self.bus is not None:
            await self.bus.close()
        if self.snapshotter is not None:
            await asyncio.to_thread(self.snapshotter.wait, 60.0)
        if self._snapshots is not None:
            self._snapshots.close()
        self.history.close()
        for hook in self.on_closed:
            await hook()
