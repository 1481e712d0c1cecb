"""What the API needs of the exchange behind it: the writer's own service, or a gateway's.

Below the service, the gateway role and the API alike (none imports another for it): the
`Venue` protocol, the `Listener` of durable commands, and `ServiceStopped`.

`perpx serve` runs the API on `perpx.service.ExchangeService` (the writer, in one process);
`perpx serve --role gateway` runs the same routes, handlers, authentication and limits on
`perpx.roles.gateway.GatewayService`, which owns no writer: it forwards commands over the
command socket and reads a follower of the durable journal. Both are a `Venue`; the API is
typed on this protocol so that one API serves both and needs neither's internals.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from perpx.adl import AdlIndicators
from perpx.core.commands import Command
from perpx.core.engine import Engine
from perpx.core.events import Event
from perpx.core.instruments import InstrumentSpec
from perpx.durable import DurableState
from perpx.readmodels import Klines, OpenInterest, Tickers
from perpx.readmodels.books import BookChanges, Books
from perpx.store.history import History
from perpx.store.records import Projection, Projector


class Listener(Protocol):
    """Who is told of each durable command once the read side has folded it (`listen`).

    The stream hub of the API is one: it publishes from the command's events, the order
    projection and the book changes. A listener runs in the event loop, in seq order; what it
    raises marks the read side unsound, as a failed projection does.
    """

    def __call__(self, command: Command, events: list[Event], projection: Projection,
                 books: BookChanges, /) -> None:
        """Take one durable command."""


class ServiceStopped(RuntimeError):
    """The service stopped (journal failure or a broken core invariant); nothing is accepted."""


class Venue(Protocol):
    """The exchange as the REST and WebSocket API see it."""

    @property
    def specs(self) -> dict[str, InstrumentSpec]:
        """The instruments, by symbol."""

    @property
    def demo(self) -> bool:
        """Demo mode: demo funds and demo-apply-money."""

    @property
    def engine(self) -> Engine:
        """The state a handler checks a no-op or refusal against before it submits.

        The writer's engine (answers drawn from it wait for `settled`), or in a gateway its
        durable follower's.
        """

    @property
    def durable(self) -> DurableState:
        """What reads show: the engine at the durable seq, and waiting for a seq."""

    @property
    def adl(self) -> AdlIndicators:
        """The positions' ADL ranks, from the durable state."""

    @property
    def projector(self) -> Projector:
        """Open and recent orders, folded from durable events."""

    @property
    def tickers(self) -> Tickers:
        """24-hour tickers."""

    @property
    def klines(self) -> Klines:
        """Open candles."""

    @property
    def books(self) -> Books:
        """The book mirrors the streams show."""

    @property
    def open_interest(self) -> OpenInterest:
        """The open interest model."""

    @property
    def history(self) -> History:
        """The history tables (orders, executions, closed P&L, ledger, candles, funding)."""

    @property
    def stopped(self) -> asyncio.Event:
        """Set once the venue stopped serving (fatal error or shutdown)."""

    @property
    def fatal(self) -> BaseException | None:
        """Why it stopped, if it failed."""

    async def submit(self, command: Command, request_id: bytes | None = None) -> list[Event]:
        """Sequence `command`; return its events once durable.

        It is journaled with `request_id`, or a fresh one drawn where the request entered
        (`perpx.store.journal.new_request_id`): what lets a retry be answered exactly.
        """

    async def submit_all(self, commands: Sequence[Command]) -> list[list[Event]]:
        """Sequence `commands` in their order; return each one's events once all are durable.

        What a batch request submits: each command has its own request id and outcome (a
        refused one refuses only itself), and each is applied after the one before it, with
        nothing between them. The writer applies them together, so they share group
        commits; a gateway sends them to it as one request (`GatewayService.submit_all`).
        """

    async def settled(self) -> None:
        """Wait until the state `engine` showed is durable and readable."""

    async def caught_up(self, account_id: int) -> None:
        """Return once reads show every write acknowledged to `account_id` so far."""

    def acked_seq(self, account_id: int) -> int:
        """Return the last seq acknowledged to `account_id` (reads wait for it)."""

    async def ensure_funded(self, account_id: int, demo_funds: str) -> None:
        """Credit a key's demo funds once (demo mode)."""

    def now_ms(self) -> int:
        """Return the venue's clock."""

    def listen(self, listener: Listener) -> None:
        """Tell `listener` of every durable command once folded."""

    async def start(self) -> None:
        """Start (the API's lifespan)."""

    async def close(self) -> None:
        """Stop (the API's lifespan)."""
