"""The API gateway role (issue #15, item 4): the whole Bybit API, no engine writer.

`perpx serve --role gateway --command-socket PATH --journal LOCATION` serves the same REST
and WebSocket API as `perpx serve` (the same `perpx.api` routes, handlers, authentication,
permissions, rate limits and parsing: the CLI builds the one app over a `GatewayService`
as it does over the writer's `ExchangeService`; both are a `perpx.venue.Venue`). What
differs is behind it:

- **Writes** go to the writer over the command socket (`perpx.transport`), which answers
  once the command is durable, with its seq (or, for a command without events, the durable
  seq it was answered at). The gateway then waits until its follower has folded that seq,
  so the answer, and every read after it, shows the write as one process does.
- **Reads** come from a follower of the durable journal inside the gateway: the journal
  opened read-only (it holds nothing that is not durable), folded into a `DurableState`
  (the core itself, as the writer's own follower) and, from the events that fold returns,
  the read side (`perpx.readside.fold`: orders, tickers, klines, books). The history tables
  are the writer's, read-only; a history query waits until they have committed the seq the
  follower shows (`SqlHistory.follow_writer`). The private and public WebSocket streams
  publish from the same fold.
- **Read-your-writes across gateways**: a signed request first waits until the follower has
  read the journal to its end *as of the request's arrival* (`caught_up`: a poll of the
  journal that starts after the call). Any write acknowledged before the request, through
  this gateway or another, is in the journal by then, so the request sees it. Concurrent
  requests share one poll. A write that reads nothing first but contracts this gateway
  knows (order create, amend, cancel, their batches and cancel-all by symbol:
  `perpx.api.context.Endpoint.reads_state`) skips it: its own seq's wait in `submit`
  comes after every earlier write. So does cancel-all by coin, which reads this gateway's
  contracts and orders again after that wait (`Endpoint.by_coin`).
- **Demo funds** of a new key are credited by the writer (a funding request on the command
  socket, `ExchangeService.ensure_funded`), which funds an account once however many
  gateways see the key first.

- **A new leader**: a standby that takes the journal over binds the dead leader's command
  socket path (or subscribes to its NATS subject), so the gateway keeps its one address.
  Every command goes with a request id drawn here (`new_request_id`), which the writer
  journals beside it. A command that reached no writer (`NotSequenced`) is resent until one
  answers, for `LEADER_WAIT_S`; so is one that may have reached the dead leader
  (`OutcomeUnknown`), with the same request id: the new leader rebuilt its window of recent
  request ids from the journal's tail and answers one it holds with the recorded events,
  applying nothing twice. Only a resend that still has no answer at `LEADER_WAIT_S` after
  the failure (or `OutcomeLost`) makes the API answer that the outcome is unknown. Over
  NATS a requester is not told its responder died, so while a command waits past `STALE_S`
  the follower checks the journal's writer lock and leader epoch, and fails such commands
  at once when the leader is gone (to be resent to the new one).

The follower polls the journal every `poll_s` too, so the public reads and streams advance
without requests. It starts from the newest engine snapshot whose read-side checkpoint the
writer's history tables hold (`readside.Checkpoints`, the writer's own rule), else from the
journal's start. A gateway holds no state of its own worth keeping: killed, it is restarted
and catches up from the journal.

**With a history projector** (`projected`: `perpx serve --gateways N --projectors M`, where
the writer only sequences and keeps no history; `ServeSettings.writer_only`) the history
tables are projector 0's (`--history`), and so are the read-side checkpoints: a history
query waits for that projector's watermark to pass the seq the follower shows, as it would
for the writer's. The projector checkpoints at seqs of its own, not at the writer's
snapshots, so the follower starts from the projector's newest usable checkpoint C: the
engine from the newest sound snapshot at or before C, the journal's commands up to C applied
to it alone (their read side is the checkpoint's), the read side from C, then both folded
from C + 1 (`_start_projected`; `docs/decisions.md`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from perpx import readside
from perpx.adl import AdlIndicators
from perpx.core.commands import Command
from perpx.core.engine import Engine
from perpx.core.events import Event
from perpx.core.instruments import InstrumentSpec
from perpx.durable import READ_WAIT_S, DurableState, Watermark
from perpx.readmodels import OpenInterest
from perpx.stopping import stop_task
from perpx.store import open_journal, open_snapshots
from perpx.store.history import History
from perpx.store.journal import Journal, JournalMissing, new_request_id
from perpx.store.recovery import latest_sound_snapshot, listed_in_snapshot
from perpx.store.snapshots import SnapshotStore
from perpx.transport.client import WriterClient
from perpx.transport.wire import NotSequenced, OutcomeLost, OutcomeUnknown
from perpx.venue import Listener, ServiceStopped

log = logging.getLogger("perpx.gateway")

T = TypeVar("T")

POLL_S = 0.02  # the follower reads the journal at least this often
OPEN_WAIT_S = 30.0  # how long a gateway waits for a journal to follow
# How long a command waits for a writer to take it (a standby taking over after the leader
# died: measured well under a second, `tests/recovery/test_gateway_failover.py`), resending
# only what certainly was not sequenced.
LEADER_WAIT_S = 3.0
RESEND_EVERY_S = 0.05
# A command unanswered this long makes the follower check that its leader still lives.
STALE_S = 0.25


def wall_clock_ms() -> int:
    """Milliseconds since the epoch, from the system clock."""
    return time.time_ns() // 1_000_000


def _not_past(seq: int, header: readside.SnapshotHeader) -> str | None:
    """Refuse an engine snapshot past `seq` (a checkpoint's), as `latest_sound_snapshot` asks."""
    return None if header.seq <= seq else f"snapshot {header.seq} is past the checkpoint {seq}"


class GatewayService:
    """A `Venue` with no writer: commands to the writer, reads from a journal follower."""

    def __init__(self, specs: list[InstrumentSpec], location: str, writer: WriterClient,
                 history: History, *, demo: bool = True, poll_s: float = POLL_S,
                 leader_wait_s: float = LEADER_WAIT_S,
                 clock: Callable[[], int] = wall_clock_ms,
                 say: Callable[[str], None] = lambda line: None,
                 projected: bool = False) -> None:
        self.specs: dict[str, InstrumentSpec] = {spec.symbol: spec for spec in specs}
        # The history tables (and read-side checkpoints) are a history projector's.
        self.projected = projected
        self.demo = demo
        self.clock = clock
        self.poll_s = poll_s
        self.leader_wait_s = leader_wait_s
        self.history = history
        self.writer = writer
        empty = readside.fresh(specs)
        self.projector = empty.projector
        self.tickers = empty.tickers
        self.klines = empty.klines
        self.funding = empty.funding
        self.books = empty.books
        self.read_seq = 0
        self.fatal: BaseException | None = None
        self.stopped = asyncio.Event()
        self._listeners: list[Listener] = []
        self._acked: dict[int, int] = {}
        self._funded: set[int] = set()
        self.resends = 0  # requests resent after an unknown outcome (a leader died holding them)
        # The journal's connection lives on one thread; the event loop never waits on it.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="perpx-follow")
        self._reader = self._open_reader(location, say)
        self._epoch = self._leader_epoch()
        self.durable = DurableState(self._start(specs, location, say))
        self.snapshot_seq = self.durable.seq  # where the follower started (0: the journal's start)
        self.adl: AdlIndicators = self.durable.adl
        # Polls of the journal: started, and finished (each folds all it read).
        self._polls_started = 0
        self._polls = Watermark(0)
        self._kick: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        # History queries wait for the writer's tables to commit what the follower shows.
        history.follow_writer(lambda: self.read_seq, READ_WAIT_S)
        # What the snapshot did not hold: the journal's tail, before anyone listens.
        for command in self._reader.read(self.durable.seq + 1):  # streamed: may be long
            self._fold(command)
        self.durable.published(self.read_seq)
        say(f"gateway: following the journal at seq {self.durable.seq} (from snapshot "
            f"{self.snapshot_seq})")

    # -- start ----------------------------------------------------------------------------

    @staticmethod
    def _open_reader(location: str, say: Callable[[str], None]) -> Journal:
        deadline = time.monotonic() + OPEN_WAIT_S
        while True:
            try:
                return open_journal(location, readonly=True)
            except JournalMissing:
                if time.monotonic() > deadline:
                    raise
                say(f"gateway: no journal at {location} yet; waiting for the writer")
                time.sleep(0.5)

    def _start(self, specs: list[InstrumentSpec], location: str,
               say: Callable[[str], None]) -> Engine:
        """Return the engine of the newest snapshot with a usable read side (installed)."""
        try:
            snapshots = open_snapshots(location, readonly=True)
        except JournalMissing:
            return Engine(specs)
        if self.projected:
            try:
                return self._start_projected(specs, snapshots, say)
            finally:
                snapshots.close()
        usable = readside.Checkpoints(self, self.history, self.history.high_watermark,
                                      listed_at=functools.partial(listed_in_snapshot, snapshots))
        try:
            engine, _ = latest_sound_snapshot(specs, self._reader, snapshots, say=say,
                                              accept=usable)
        finally:
            snapshots.close()
        if engine is None:
            return Engine(specs)
        readside.install(self, usable.loaded[engine.last_seq])
        return engine

    def _start_projected(self, specs: list[InstrumentSpec], snapshots: SnapshotStore,
                         say: Callable[[str], None]) -> Engine:
        """Return the engine at the history projector's newest usable checkpoint (installed).

        Usable as the projector's own restart judges it (`HistoryProjector._restore`):
        written by this code for this instrument table, loading, and within the journal.
        """
        last = self._reader.last_seq()
        code = readside.fingerprint(specs)
        for seq in self.history.checkpoint_seqs():
            found = self.history.load_checkpoint(seq) if seq <= last else None
            if found is None or found[0] != code:
                say(f"gateway: the history's checkpoint {seq} is not usable (beyond the "
                    "journal, or written by other code)")
                continue
            try:
                read_side = readside.load(self, found[1], seq)
            except readside.ReadSideError as bad:
                say(f"gateway: the history's checkpoint {seq} is not usable: {bad}")
                continue
            engine, _ = latest_sound_snapshot(specs, self._reader, snapshots,
                                              accept=functools.partial(_not_past, seq))
            engine = engine if engine is not None else Engine(specs)
            snapshot_seq = engine.last_seq
            if snapshot_seq < seq:
                for command in self._reader.read(snapshot_seq + 1):
                    engine.apply(command)
                    if command.seq == seq:
                        break
            say(f"gateway: the history's checkpoint {seq} over snapshot {snapshot_seq}")
            readside.install(self, read_side)
            return engine
        return Engine(specs)

    # -- the follower ---------------------------------------------------------------------

    def _fold(self, command: Command) -> None:
        """Fold one command into the engine and the read side (readers are woken after)."""
        events = self.durable.fold(command)
        projection, books = readside.fold(self, command, events, None)
        for listener in self._listeners:
            listener(command, events, projection, books)
        self.read_seq = command.seq

    def _fold_all(self, commands: list[Command]) -> None:
        """Fold a poll's commands, then wake the readers once for all of them.

        Nothing runs between two folds (no await), so a reader woken per command would
        see the same state as one woken at the end: one advance saves a pass over the
        waiters per command.
        """
        for command in commands:
            self._fold(command)
        if commands:
            self.durable.published(commands[-1].seq)

    def _read_new(self, after: int) -> list[Command]:
        # A poll's commands come as one chunk (one query and one decode call on SQLite):
        # handed on as they are, not copied command by command into another list.
        chunks = list(self._reader.read_chunks(after + 1))
        if len(chunks) == 1:
            return chunks[0]
        return [command for chunk in chunks for command in chunk]

    def _leader_epoch(self) -> int:
        leader = getattr(self._reader, "leader", None)
        record = leader() if leader is not None else None
        return record.epoch if record is not None else 0

    def _leader_moved(self) -> bool:
        """Say whether the leader died or was replaced since the last look (follower thread).

        The writer lock is free only once its holder died, and the epoch moves only when a
        new writer took the lock: either way, the writer that took a command still
        unanswered will never answer it.
        """
        alive: Callable[[], bool] | None = getattr(self._reader, "writer_alive", None)
        epoch = self._leader_epoch()
        moved = epoch != self._epoch or (alive is not None and not alive())
        self._epoch = epoch
        return moved

    async def _check_leader(self, loop: asyncio.AbstractEventLoop) -> None:
        """Fail commands held by a dead leader now, not at the transport's timeout.

        Over NATS a requester is not told that its responder died; over the Unix socket the
        kernel says it at once (`waiting_since` is None there). Only looked at while a
        command has waited `STALE_S`, so a healthy writer costs no query.
        """
        since = self.writer.waiting_since()
        if since is None or time.monotonic() - since < STALE_S:
            return
        looked = time.monotonic()
        try:
            moved = await loop.run_in_executor(self._executor, self._leader_moved)
        except Exception as failure:  # the journal's database hiccuped: look again later
            log.warning("gateway: could not read the leader record: %r", failure)
            return
        if moved:
            dropped = self.writer.abandon(looked)
            log.warning("gateway: the leader died or changed; %d commands in flight have an "
                        "unknown outcome", dropped)

    async def _follow(self) -> None:
        assert self._kick is not None
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.poll_s)
            self._kick.clear()
            self._polls_started += 1
            number = self._polls_started
            try:
                commands = await loop.run_in_executor(self._executor, self._read_new,
                                                      self.durable.seq)
                self._fold_all(commands)
            except Exception as failure:
                # A read side that failed to fold is no longer the journal's: stop serving
                # (a restart rebuilds it) rather than show a state no replay would give.
                log.critical("gateway: following the journal failed", exc_info=failure)
                self._stop(failure)
                return
            self._polls.advance(number)
            await self._check_leader(loop)

    async def _caught_up(self, timeout: float = READ_WAIT_S) -> None:
        """Return once a poll that started after this call has been folded."""
        if self.fatal is not None:
            raise ServiceStopped("the gateway has stopped") from self.fatal
        wanted = self._polls_started + 1
        if self._kick is not None:
            self._kick.set()
        await self._polls.wait_for(wanted, timeout)

    async def _shows(self, seq: int) -> None:
        """Return once the follower has folded `seq` (polling at once if it has not)."""
        if seq > self.durable.seq and self._kick is not None:
            self._kick.set()
        await self.durable.wait_for(seq)

    def _stop(self, failure: BaseException) -> None:
        if self.fatal is None:
            self.fatal = failure
        self.stopped.set()

    # -- the Venue --------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The durable follower: a gateway has no writer's state to check a request against."""
        return self.durable.engine

    @property
    def open_interest(self) -> OpenInterest:
        """The open interest model: the tickers' own."""
        return self.tickers.open_interest

    async def submit(self, command: Command, request_id: bytes | None = None) -> list[Event]:
        """Have the writer sequence `command`; return its events once durable and shown here.

        The command carries `request_id` or one drawn here, so that it can be resent after
        a failover without being applied twice (`_to_writer`).
        """
        if self.fatal is not None:
            raise ServiceStopped("the gateway has stopped") from self.fatal
        rid = request_id or new_request_id()
        seq, events = await self._to_writer(functools.partial(self.writer.submit, command, rid))
        self._acknowledged(command, seq)
        await self._shows(seq)
        return events

    async def submit_all(self, commands: Sequence[Command]) -> list[list[Event]]:
        """Have the writer sequence `commands` in order; return their events once shown here.

        One request for them all (`WriterClient.submit_all`), each command with a request
        id drawn here: the writer applies them in their order at once, so they share group
        commits, and a resend after a failure goes whole, with the same ids (`_to_writer`),
        so the new leader answers those journaled (a prefix) and applies the rest, still in
        order. Sent one by one, a later command's resend could reach a new leader before an
        earlier one's and be applied first. The last seq shows every earlier one.
        """
        if self.fatal is not None:
            raise ServiceStopped("the gateway has stopped") from self.fatal
        if not commands:
            return []
        rids = [new_request_id() for _ in commands]
        answers = await self._to_writer(functools.partial(self.writer.submit_all, commands,
                                                          rids))
        for command, (seq, _) in zip(commands, answers, strict=True):
            self._acknowledged(command, seq)
        await self._shows(max(seq for seq, _ in answers))
        return [events for _, events in answers]

    def _acknowledged(self, command: Command, seq: int) -> None:
        account_id = getattr(command, "account_id", None)
        if account_id is not None:
            self._acked[account_id] = max(self._acked.get(account_id, 0), seq)

    async def _to_writer(self, send: Callable[[], Awaitable[T]]) -> T:
        """Return `send()`'s answer, resending while no writer gave one, for `LEADER_WAIT_S`.

        Between a leader's death and its standby's takeover nothing answers the command
        socket (or the NATS subject); such a failure is `NotSequenced`, so resending cannot
        apply a command twice, and the caller gets its answer from the new leader instead of
        an error. A request that may have reached the dead leader (`OutcomeUnknown`) is
        resent too, as it is exact (a command with its request id: the writer answers one
        it journaled with the recorded events; a funding request: the writer funds once), for
        `LEADER_WAIT_S` from that failure; past it, or when the writer says the answer is
        gone (`OutcomeLost`), it goes up to the API, which tells the caller to look.
        """
        deadline = time.monotonic() + self.leader_wait_s
        unknown = False  # an attempt may have reached a writer: the deadline runs from it
        while True:
            try:
                answer = await send()
            except OutcomeLost:
                raise
            except OutcomeUnknown:
                if self.fatal is not None:
                    raise
                if not unknown:
                    unknown = True
                    deadline = time.monotonic() + self.leader_wait_s
                elif time.monotonic() >= deadline:
                    raise
                self.resends += 1
            except NotSequenced as failure:
                if time.monotonic() >= deadline or self.fatal is not None:
                    if unknown:  # the first attempt may still be journaled: not "nothing"
                        raise OutcomeUnknown("the writer holding the command died and no "
                                             "writer answered its resend in time") from failure
                    raise
            else:
                if unknown:
                    log.warning("a request was resent after an unknown outcome and answered")
                return answer
            await asyncio.sleep(RESEND_EVERY_S)

    async def settled(self) -> None:
        """Return at once: the state a gateway checks requests against is the durable one."""

    async def caught_up(self, account_id: int) -> None:
        """Return once reads show the journal as it stood at this call (see the module)."""
        await self._caught_up()
        await self._shows(self.acked_seq(account_id))

    def acked_seq(self, account_id: int) -> int:
        """Return the last seq this gateway saw acknowledged to `account_id`."""
        return self._acked.get(account_id, 0)

    async def ensure_funded(self, account_id: int, demo_funds: str) -> None:
        """Have the writer credit a key's demo funds once (it alone knows if it did)."""
        if not self.demo or account_id in self._funded or not demo_funds:
            return
        if self.durable.engine.clearing.account(account_id) is not None:
            self._funded.add(account_id)
            return
        seq = await self._to_writer(lambda: self.writer.fund(account_id, demo_funds))
        self._funded.add(account_id)
        self._acked[account_id] = max(self._acked.get(account_id, 0), seq)
        await self._shows(seq)

    def now_ms(self) -> int:
        """Return the clock, never behind the last command the follower folded."""
        return max(self.clock(), self.durable.engine.last_ts_ms)

    def listen(self, listener: Listener) -> None:
        """Tell `listener` of every durable command folded from now on."""
        self._listeners.append(listener)

    async def start(self) -> None:
        """Start following the journal."""
        self._kick = asyncio.Event()
        self._task = asyncio.create_task(self._follow(), name="perpx-gateway-follow")

    def profile_on_signals(self, path: str) -> None:
        """Profile this gateway between SIGUSR1 and SIGUSR2; write the statistics to `path`.

        For `perpx bench api --profile-gateway`: only the orders are profiled, not the
        start or the baseline GETs. Two profilers, as cProfile sees one thread: the event
        loop's (HTTP, API, the fold, futures) and the follower thread's (the journal's
        reads and decoding), written together.
        """
        import cProfile
        import signal

        loop = asyncio.get_running_loop()
        profilers: list[cProfile.Profile] = []

        def begin() -> None:
            if profilers:
                return
            # CPU time of each thread, not wall time: the two cores are shared.
            profilers.extend([cProfile.Profile(time.thread_time),
                              cProfile.Profile(time.thread_time)])
            self._executor.submit(profilers[1].enable).result()
            profilers[0].enable()

        def end() -> None:
            if not profilers:
                return
            profilers[0].disable()
            self._executor.submit(profilers[1].disable).result()
            import pstats

            pstats.Stats(profilers[0], profilers[1]).dump_stats(path)
            profilers.clear()

        loop.add_signal_handler(signal.SIGUSR1, begin)
        loop.add_signal_handler(signal.SIGUSR2, end)

    async def close(self) -> None:
        """Stop following; close the writer's connection, the journal and the tables."""
        if self._task is not None:
            await stop_task(self._task)  # cancelled again if 3.11's wait_for swallows it
            self._task = None
        await self.writer.close()
        self._executor.submit(self._reader.close).result()
        self._executor.shutdown()
        self.history.close()
        self.stopped.set()
