"""The single writer: stamp each command with seq and time, journal it, apply it, publish it.

Commands are applied to the engine at once, in the order they arrive, so the single-threaded
core never waits on a disk. They are acknowledged (the `submit` future resolves) and their
events published to subscribers only after the batch holding them is durable in the journal:
nothing a client or a stream has seen can be lost in a crash. While one batch is being written,
the next accumulates, so one flush carries many commands under load (group commit).

Commands that come together (a batch request, a gateway forwarding many) go in with
`submit_all`: each is stamped and applied in its order at once, with nothing between them, and
the whole batch shares ONE future, resolved with every command's entry once the last is
durable. What a command costs the writer is then its stamp, its apply and its place in the
journal, not a future, a task wake-up and a result of its own (issue #14).

A command's entry is the event bus's (`perpx.bus.codec.Durable`: seq, time, events), made
once when it is applied: the batch's future answers with it, and subscribers that take entries
(`subscribe_entries`: the bus publisher) get the same object, a durable batch's at once, so the
msgpack of its events, made once on first need and kept on it, serves both the command's reply
and its bus batch (issue #15).

If the journal fails, the engine has applied commands that are not durable: the sequencer
stops (fail-stop) and every pending and later `submit` raises; a restart recovers from the
journal, which holds exactly what was acknowledged.

A command may carry a request id (`perpx.store.journal.new_request_id`, given where the request
entered the API). The id is journaled beside the command, never inside it, and the sequencer
keeps the last `RECENT_WINDOW` ids it applied with their outcome: a command resent with an id
already there (a gateway retrying what was in flight when the leader died) is answered with
that outcome, not applied again. A writer that takes the journal over fills the window from
the journal's tail (`remember`), so the retry finds it there too. The tail replay that
rebuilds such a writer starts from a snapshot, so the ids journaled at or before it come with
their seq only: a resend of one of those is answered by `recompute` (the service's: a
deterministic replay of the journal up to that seq, in a worker thread, one at a time), whose
events are kept in the window for the next resend.

A subscriber is a side task (read models, snapshots): its exception is logged and the loop
goes on, so a durable command is always answered and every other subscriber still sees it.
A subscriber whose state must not silently drift catches its own failure and says so (the
service marks its read side unsound).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import cast

import msgspec

from perpx.bus.codec import Durable
from perpx.core.commands import Command
from perpx.core.engine import Engine
from perpx.core.events import Event
from perpx.store.journal import Journal, OutcomeNotKept

log = logging.getLogger("perpx.sequencer")

Subscriber = Callable[[Command, list[Event]], None]
# A subscriber that takes each durable batch's entries at once, in seq order (the bus publisher).
EntrySubscriber = Callable[[list[Durable]], None]

# How many recent request ids the writer remembers with their outcome. It must cover every
# command that can be in flight when a leader dies (a batch being journaled and the next one
# accumulating, up to 2 x `max_batch`) plus what the new leader accepts before the gateways'
# resends reach it (they resend within `LEADER_WAIT_S` of the takeover); docs/decisions.md.
RECENT_WINDOW = 65_536

_replace = msgspec.structs.replace  # a command's stamp: one global, not two attribute reads


def wall_clock_ms() -> int:
    """Milliseconds since the epoch, from the system clock."""
    return time.time_ns() // 1_000_000


class SequencerStopped(RuntimeError):
    """The sequencer stopped after a journal failure or `close`; nothing more is accepted."""


# A request id's outcome in the window: (seq, events; None if recorded at recovery and not
# recomputed). Kept from the moment its command is applied: while its seq is past the durable
# one (and not past the engine's), it is in flight and a resend waits for it to be durable;
# no update when it is.
Recorded = tuple[int, list[Event] | None]
# A `submit_all` batch's one future: (its last command's seq, the future, the entries).
BatchAck = tuple[int, asyncio.Future[list[Durable]], list[Durable]]
# recompute(seq, more): the events of the journaled command at `seq`, by replay; with those
# of any seq of `more` the replay passed on its way (a dict by seq, `seq` in it). Blocking.
Recompute = Callable[[int, list[int]], dict[int, list[Event]]]


class Sequencer:
    """Own the engine and the journal; everything that changes state goes through `submit`."""

    def __init__(
        self,
        engine: Engine,
        journal: Journal,
        clock: Callable[[], int] = wall_clock_ms,
        max_batch: int = 4096,
        window: int = RECENT_WINDOW,
        recompute: Recompute | None = None,
    ) -> None:
        if journal.last_seq() != engine.last_seq:
            raise ValueError(
                f"engine is at seq {engine.last_seq} but the journal at {journal.last_seq()}: "
                "recover the engine from the journal first"
            )
        self.engine = engine
        self.journal = journal
        self._clock = clock
        self._max_batch = max_batch
        # The commands applied and not yet taken by the flush loop, side by side with their
        # entries and request ids: three appends a command (issue #14).
        self._commands: list[Command] = []
        self._entries: list[Durable] = []
        self._rids: list[bytes | None] = []
        # The batch being journaled or handed out (commands, entries); `applied_after`.
        self._in_flight: tuple[list[Command], list[Durable]] = ([], [])
        self._in_flight_last = engine.last_seq  # its last seq (durable_seq when none)
        # Who waits: one command's future by its seq (`submit`'s, or a resend's of a batch's
        # command in flight), and the batches' futures in seq order of their last command.
        self._waiters: dict[int, asyncio.Future[list[Event]]] = {}
        self._batch_acks: deque[BatchAck] = deque()
        self._subscribers: list[Subscriber] = []
        self._entry_subscribers: list[EntrySubscriber] = []
        self._flusher: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._closed = False
        self.batches = 0
        self.subscriber_failures = 0
        self.durable_seq = engine.last_seq
        # request id -> its command's outcome (`Recorded`), in flight or durable;
        # oldest first. An OrderedDict: dropping a plain dict's first key again and again
        # costs O(size) per drop (iteration skips the deleted slots), ~33 us at 65,536;
        # popitem is O(1).
        self._recent: OrderedDict[bytes, Recorded] = OrderedDict()
        self._window = window
        self.resent = 0  # commands answered from `_recent` instead of applied
        self._recompute = recompute
        # One replay at a time (it holds a CPU); resends of one seq wait for the same one.
        self._replaying = asyncio.Lock()
        self._recomputing: dict[int, asyncio.Task[list[Event]]] = {}
        self.recomputed = 0  # replays run for resends whose events were not kept

    def remember(self, request_id: bytes, seq: int, events: list[Event] | None) -> None:
        """Record a journaled command's request id and outcome (recovery, takeover)."""
        self._recent[request_id] = (seq, events)
        if len(self._recent) > self._window:
            self._recent.popitem(last=False)

    def recorded(self, request_id: bytes) -> int | None:
        """Return the seq of the command that carried `request_id`, if it is remembered."""
        hit = self._recent.get(request_id)
        if hit is None:
            return None
        return hit[0]

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call `subscriber(command, events)` for every durable command, in seq order."""
        self._subscribers.append(subscriber)

    def subscribe_entries(self, subscriber: EntrySubscriber) -> None:
        """Call `subscriber(entries)` for every durable batch: its entries, in seq order.

        After the `subscribe` subscribers have seen the batch's commands; one call a batch,
        not one a command (the entries are the ones the batch's futures answer with).
        """
        self._entry_subscribers.append(subscriber)

    async def submit(self, command: Command, request_id: bytes | None = None) -> list[Event]:
        """Sequence, apply and journal `command`; return its events once it is durable.

        The `seq` and `ts_ms` the caller put in the command are replaced. A `request_id`
        seen within the window answers with that command's events, applying nothing.
        """
        done = self.submit_nowait(command, request_id)
        return await done

    def submit_nowait(self, command: Command, request_id: bytes | None = None
                      ) -> asyncio.Future[list[Event]]:
        """Apply `command` now and return a future that resolves when it is durable."""
        self._accepting()
        outcomes, resent = self._apply_each((command,), (request_id,))
        if resent:
            return resent[0][1]
        done: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        self._waiters[outcomes[0].seq] = done
        self._flushing()
        return done

    async def submit_all(self, commands: Sequence[Command],
                         request_ids: Sequence[bytes | None] | None = None
                         ) -> list[Durable]:
        """Sequence, apply and journal `commands` in order; return each one's entry.

        `submit` for each, with nothing between them (`submit_all_nowait`).
        """
        return await self.submit_all_nowait(commands, request_ids)

    def submit_all_nowait(self, commands: Sequence[Command],
                          request_ids: Sequence[bytes | None] | None = None
                          ) -> asyncio.Future[list[Durable]]:
        """Apply `commands` now, in order; one future resolves to their entries once durable.

        Each command is what `submit_nowait` makes of it (its own stamp, apply, request id
        and window entry, by the same code), applied right after the one before it. The batch
        shares one future, hung on its last applied command: the journal is written in seq
        order, so that one durable means all are. A command whose request id the window
        holds (a resent batch, whose journaled commands are a prefix) is answered as
        `submit_nowait` answers it, and the future waits for those answers too (its entry
        then is its recorded events' seq and time, `Durable.from_events`).
        """
        self._accepting()
        ids = request_ids if request_ids is not None else [None] * len(commands)
        if len(ids) != len(commands):
            raise ValueError(f"{len(commands)} commands but {len(ids)} request ids")
        outcomes, resent = self._apply_each(commands, ids)
        applied = len(resent) < len(outcomes) if resent else bool(outcomes)
        done: asyncio.Future[list[Durable]] = asyncio.get_running_loop().create_future()
        if not applied:
            done.set_result(outcomes)  # nothing applied: nothing to wait for but the resends
        else:
            self._batch_acks.append((self._commands[-1].seq, done, outcomes))
            self._flushing()
        if resent:
            return asyncio.ensure_future(_with_resent(done, outcomes, resent))
        return done

    def _accepting(self) -> None:
        """Raise `SequencerStopped` once the journal failed or `close` began."""
        if self._failure is not None or self._closed:
            raise SequencerStopped("sequencer is stopped") from self._failure

    def _apply_each(self, commands: Sequence[Command], ids: Sequence[bytes | None]
                    ) -> tuple[list[Durable], list[tuple[int, asyncio.Future[list[Event]]]]]:
        """Stamp, apply and queue each of `commands` in order, under its request id.

        Return each one's entry, and the resent ones (a request id the window holds): their
        place in the entries and the future `_resent` gives (until answered, their entry is
        their seq without events). The one place where a command is stamped: the next seq,
        and a time from the clock (read once a command) no earlier than the last one's.
        Locals and no call per command but the clock, `replace` and `apply`: this loop is
        every command's path through the writer (issue #14).
        """
        recent = self._recent
        clock = self._clock
        engine = self.engine
        apply = engine.apply
        pending, entries, rids = self._commands, self._entries, self._rids
        outcomes: list[Durable] = []
        resent: list[tuple[int, asyncio.Future[list[Event]]]] = []
        for command, request_id in zip(commands, ids, strict=True):
            if request_id is not None:
                hit = recent.get(request_id)
                if hit is not None:
                    resent.append((len(outcomes), self._resent(request_id, hit)))
                    outcomes.append(Durable(hit[0], 0, []))
                    continue
            seq = engine.last_seq + 1
            ts_ms = clock()
            if ts_ms < engine.last_ts_ms:
                ts_ms = engine.last_ts_ms
            stamped = _replace(command, seq=seq, ts_ms=ts_ms)
            try:
                events = apply(stamped)
            except BaseException as bug:
                # An exception out of the core is a broken invariant: stop rather than run
                # on. The batch in flight is durable whatever happens here: still answered.
                self._fail(bug, self._in_flight_last)
                raise
            entry = Durable(seq, ts_ms, events)
            pending.append(stamped)
            entries.append(entry)
            rids.append(request_id)
            outcomes.append(entry)
            if request_id is not None:
                # Its outcome at once: a resend while `seq` is past `durable_seq` waits for
                # it to be durable (`_resent`), so nothing is answered before; durable, the
                # same entry answers it, and the flush loop touches the window no more.
                recent[request_id] = (seq, events)
                if len(recent) > self._window:
                    recent.popitem(last=False)
        return outcomes, resent

    def _flushing(self) -> None:
        """Make sure the flush loop runs (it ends whenever nothing is pending)."""
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())

    def _resent(self, request_id: bytes, hit: Recorded) -> asyncio.Future[list[Event]]:
        """Answer a request id already applied: with its own future, or from its record."""
        self.resent += 1
        seq, events = hit
        # Rare (a gateway's resend after a failover or a timeout), and worth seeing.
        log.warning("a request id came again: answered with the outcome recorded at seq %d",
                    seq)
        if self.durable_seq < seq <= self.engine.last_seq:
            # In flight (applied here, not yet durable): the same answer as the first time,
            # once durable. A batch's command gets its future only now, when someone waits
            # for it alone. (A remembered seq past the engine's is no command of this
            # writer: answered from its record like any other.)
            waiting = self._waiters.get(seq)
            if waiting is None:
                waiting = self._waiters[seq] = asyncio.get_running_loop().create_future()
            return waiting
        done: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        if events is not None:
            done.set_result(events)
        elif self._recompute is None:
            done.set_exception(OutcomeNotKept(seq))
        else:
            replay = self._recomputing.get(seq)
            if replay is None:
                replay = asyncio.ensure_future(self._replay(request_id, seq))
                self._recomputing[seq] = replay
                replay.add_done_callback(lambda _: self._recomputing.pop(seq, None))
            # A future of its own per caller: one caller cancelled must not cancel the replay.
            replay.add_done_callback(functools.partial(_settle, done))
        return done

    async def _replay(self, request_id: bytes, seq: int) -> list[Event]:
        """Recompute the events of the command at `seq` (journaled before this writer began).

        The one replay also recomputes the other ids of the window still without their
        events that it passes on its way, and runs on through those up to two batches past
        `seq` (what a leader holds in flight when it dies: the batch being journaled and the
        next), so the resends that come with this one are answered at once. A failure is
        `OutcomeNotKept`.
        """
        assert self._recompute is not None
        async with self._replaying:
            hit = self._recent.get(request_id)
            if hit is not None and hit[1] is not None:
                return hit[1]  # an earlier replay passed it
            upto = seq + 2 * self._max_batch
            missing = [(rid, kept[0]) for rid, kept in self._recent.items()
                       if kept[1] is None and kept[0] <= upto]
            try:
                found = await asyncio.to_thread(self._recompute, seq,
                                                [at for _, at in missing])
                events = found[seq]
            except Exception as failure:
                log.exception("recomputing the outcome of seq %d failed", seq)
                raise OutcomeNotKept(seq) from failure
            self.recomputed += 1
            for rid, at in missing:
                kept = self._recent.get(rid)
                if at in found and kept is not None and kept[1] is None:
                    self._recent[rid] = (at, found[at])  # same key: its place is unchanged
            return events

    async def _flush_loop(self) -> None:
        while self._commands:
            commands, entries, rids = self._take()
            self._in_flight = (commands, entries)
            self._in_flight_last = last = commands[-1].seq
            try:
                await asyncio.to_thread(self.journal.append, commands, rids)
            except BaseException as failure:
                self._fail(failure, self.durable_seq)
                return
            self.batches += 1
            self.durable_seq = last
            first = commands[0].seq
            subscribers = self._subscribers
            if subscribers:  # every one sees every durable command, in seq order
                for command, entry in zip(commands, entries, strict=True):
                    for subscriber in subscribers:
                        try:
                            subscriber(command, entry.events)
                        except Exception:  # a side task must never cost an answer (see above)
                            self._subscriber_failed(subscriber, command.seq)
            for taker in self._entry_subscribers:
                try:
                    taker(entries)
                except Exception:
                    self._subscriber_failed(taker, first)
            # Answers only now (their callbacks run once this loop yields, after every
            # subscriber above has seen the batch, as when each was answered in turn).
            waiters = self._waiters
            if waiters:
                due = (range(first, last + 1) if len(waiters) >= len(commands)
                       else [seq for seq in waiters if first <= seq <= last])
                for seq in due:
                    done = waiters.pop(seq, None)
                    if done is not None and not done.done():
                        done.set_result(entries[seq - first].events)
            acks = self._batch_acks
            while acks and acks[0][0] <= last:
                _, whole, outcomes = acks.popleft()
                if not whole.done():
                    whole.set_result(outcomes)
            self._in_flight = ([], [])

    def _subscriber_failed(self, subscriber: object, seq: int) -> None:
        """Count and log a subscriber's exception (called from its `except`).

        `seq`: the command's, or the first of a batch handed whole.
        """
        self.subscriber_failures += 1
        log.exception("subscriber %r failed on seq %d", subscriber, seq)

    def _take(self) -> tuple[list[Command], list[Durable], list[bytes | None]]:
        """Take the next batch (up to `max_batch` commands) off the pending lists."""
        if len(self._commands) <= self._max_batch:  # all of them: no copy
            taken = (self._commands, self._entries, self._rids)
            self._commands, self._entries, self._rids = [], [], []
            return taken
        n = self._max_batch
        taken = (self._commands[:n], self._entries[:n], self._rids[:n])
        del self._commands[:n], self._entries[:n], self._rids[:n]
        return taken

    def applied_after(self, seq: int) -> list[tuple[Command, list[Event]]]:
        """Return every applied command after `seq` with its events, in seq order.

        These are the commands the engine holds but some subscriber may not have seen yet
        (being journaled, or waiting for the next batch): a forked snapshot folds them into
        its copy of the read side so that it stands at the engine's seq.
        """
        commands = self._in_flight[0] + self._commands
        entries = self._in_flight[1] + self._entries
        return [(command, entry.events) for command, entry in zip(commands, entries, strict=True)
                if command.seq > seq]

    def _fail(self, failure: BaseException, after: int) -> None:
        """Stop: fail every wait for a command after seq `after`, drop what is pending.

        `after` is the last seq that is or will be durable: the batch in flight is still
        answered when the engine (not the journal) failed.
        """
        self._failure = failure
        waits: list[asyncio.Future[list[Event]] | asyncio.Future[list[Durable]]] = [
            done for seq, done in self._waiters.items() if seq > after]
        waits += [whole for last, whole, _ in self._batch_acks if last > after]
        for done in waits:
            if not done.done():
                done.set_exception(SequencerStopped(f"journal failed: {failure!r}"))
        self._waiters = {seq: done for seq, done in self._waiters.items() if seq <= after}
        self._batch_acks = deque(ack for ack in self._batch_acks if ack[0] <= after)
        self._commands.clear()
        self._entries.clear()
        self._rids.clear()

    async def drain(self) -> None:
        """Wait until every submitted command is durable (or the sequencer has failed)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def close(self) -> None:
        """Finish pending writes, refuse new commands and close the journal."""
        self._closed = True
        await self.drain()
        self.journal.close()

    @property
    def closed(self) -> bool:
        """True once `close` began: nothing more is accepted (a shutdown, not a failure)."""
        return self._closed

    @property
    def failure(self) -> BaseException | None:
        """The journal failure that stopped the sequencer, if any."""
        return self._failure


async def _with_resent(done: asyncio.Future[list[Durable]], outcomes: list[Durable],
                       resent: list[tuple[int, asyncio.Future[list[Event]]]]
                       ) -> list[Durable]:
    """Return a batch's entries once it is durable and its resent commands are answered."""
    # gather, not one await after another: a failure of one retrieves the others' too.
    answers = await asyncio.gather(done, *(answer for _, answer in resent))
    for (at, _), events in zip(resent, answers[1:], strict=True):
        outcomes[at] = Durable.from_events(cast(list[Event], events), outcomes[at].seq)
    return outcomes


def _settle(done: asyncio.Future[list[Event]], replay: asyncio.Future[list[Event]]) -> None:
    """Pass a replay's result (or failure) on to one caller's future."""
    if done.done():
        return
    if replay.cancelled():
        done.cancel()
    elif (failure := replay.exception()) is not None:
        done.set_exception(failure)
    else:
        done.set_result(replay.result())
