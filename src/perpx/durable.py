"""What readers see of the engine: a follower folded from durable commands only (issue #15).

The writer's engine applies each command as it arrives, before its batch is durable (the
core never waits on a disk), so for up to one group commit it holds orders, fills and money
that a crash would erase. No read may show those. `DurableState` keeps a second engine, the
follower, that applies a command only once the journal holds it: every REST read of books,
positions, wallets, margin modes and the insurance fund, and every position or wallet row
a private stream builds, reads the follower. Its `seq` is the durable watermark of what it
shows: it never passes the journal's durable seq, and a crash loses nothing it has shown.

The follower is the core itself (one rule in one place: the same margin, liquidation-price
and available-balance code the writer runs), so its figures equal the writer's at each seq
exactly; it is deterministic, so folding the durable commands again gives the same state.
An API gateway (`perpx.roles.gateway`) keeps one too, folded from the journal it reads;
readers ask either through the same two things: the state at `seq`, and `wait_for(seq)`.

Read-your-writes: a caller whose write was acknowledged at seq S must see S. A reader asks
`wait_for(S)` before it reads: it returns at once when the follower has passed S (always, in
one process, where the follower folds a batch before its commands are acknowledged), and
otherwise waits until it has, or raises `ReadTimeout` after `timeout` seconds.
"""

from __future__ import annotations

import asyncio
import heapq

from perpx.adl import AdlIndicators
from perpx.core.commands import Command
from perpx.core.engine import Engine
from perpx.core.events import Event

# How long a read waits for the projection to pass the caller's last acknowledged write.
READ_WAIT_S = 5.0


class ReadTimeout(RuntimeError):
    """The durable projection did not reach a caller's acknowledged seq in time."""


class Watermark:
    """A seq that only grows, and waiters for it to pass a given seq.

    Waiters sit in a heap by the seq they want, so an advance wakes the ones it passes
    without looking at the rest; a wait times out by a timer of its own rather than
    `asyncio.wait_for` (a gateway waits here twice per signed request: measured, the
    list rebuilt on every advance and every wake, and `wait_for`'s wrapping, were a tenth
    of its CPU; `docs/decisions.md`). A waiter that timed out or was cancelled leaves its
    future, done, in the heap until the seq passes it.
    """

    def __init__(self, seq: int = 0) -> None:
        self.seq = seq
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._made = 0  # breaks ties between equal seqs (futures do not compare)

    def advance(self, seq: int) -> None:
        """Move to `seq` (never back) and wake whoever waits for it."""
        if seq <= self.seq:
            return
        self.seq = seq
        waiters = self._waiters
        while waiters and waiters[0][0] <= seq:
            future = heapq.heappop(waiters)[2]
            if not future.done():
                future.set_result(None)

    async def wait_for(self, seq: int, timeout: float = READ_WAIT_S) -> None:
        """Return once the watermark is at or past `seq`; raise `ReadTimeout` after `timeout`."""
        if seq <= self.seq:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._made += 1
        heapq.heappush(self._waiters, (seq, self._made, future))
        timer = loop.call_later(timeout, _expire, future, self, seq)
        try:
            await future  # a cancelled caller cancels the future: the heap skips it
        finally:
            timer.cancel()


def _expire(future: asyncio.Future[None], mark: Watermark, seq: int) -> None:
    if not future.done():
        future.set_exception(ReadTimeout(f"reads are at seq {mark.seq}, not yet at {seq}"))


class DurableState:
    """The engine's state at the durable seq: a follower engine and its watermark."""

    def __init__(self, engine: Engine) -> None:
        """Follow from `engine`'s state, which must be durable (a recovered engine is)."""
        self.engine = Engine.from_snapshot(list(engine.instruments.values()),
                                           engine.to_snapshot())
        self.watermark = Watermark(self.engine.last_seq)
        # The positions' ADL indicators, ranked from the durable state (REST and streams).
        self.adl = AdlIndicators(self.engine)

    @property
    def seq(self) -> int:
        """The last durable command the state holds."""
        return self.engine.last_seq

    def fold(self, command: Command) -> list[Event]:
        """Apply the next durable command (in seq order, each once); return its events."""
        if command.seq != self.engine.last_seq + 1:
            raise ValueError(f"durable state at seq {self.engine.last_seq} was handed "
                             f"seq {command.seq}")
        return self.engine.apply(command)

    def published(self, seq: int) -> None:
        """Say that everything folded from the command at `seq` is readable (wakes readers).

        Never past what the follower holds: had a fold failed, readers waiting for their
        writes time out ("reads are behind") rather than read a state without them.
        """
        self.watermark.advance(min(seq, self.engine.last_seq))

    async def wait_for(self, seq: int, timeout: float = READ_WAIT_S) -> None:
        """Return once reads show every command up to `seq` (see the module's doc)."""
        await self.watermark.wait_for(seq, timeout)
