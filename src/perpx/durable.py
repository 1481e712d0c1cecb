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

from perpx.adl import AdlIndicators
from perpx.core.commands import Command
from perpx.core.engine import Engine
from perpx.core.events import Event

# How long a read waits for the projection to pass the caller's last acknowledged write.
READ_WAIT_S = 5.0


class ReadTimeout(RuntimeError):
    """The durable projection did not reach a caller's acknowledged seq in time."""


class Watermark:
    """A seq that only grows, and waiters for it to pass a given seq."""

    def __init__(self, seq: int = 0) -> None:
        self.seq = seq
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def advance(self, seq: int) -> None:
        """Move to `seq` (never back) and wake whoever waits for it."""
        if seq <= self.seq:
            return
        self.seq = seq
        if not self._waiters:
            return
        still: list[tuple[int, asyncio.Future[None]]] = []
        for wanted, future in self._waiters:
            if wanted <= seq:
                if not future.done():
                    future.set_result(None)
            else:
                still.append((wanted, future))
        self._waiters = still

    async def wait_for(self, seq: int, timeout: float = READ_WAIT_S) -> None:
        """Return once the watermark is at or past `seq`; raise `ReadTimeout` after `timeout`."""
        if seq <= self.seq:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise ReadTimeout(f"reads are at seq {self.seq}, not yet at {seq}") from None
        finally:
            self._waiters = [(s, f) for s, f in self._waiters if f is not future]


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
