"""What a REST handler gets: the service, the caller's key and account, the parameters."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from perpx.api.keys import ApiKey, KeyStore
from perpx.api.limits import ConnectionGuard
from perpx.api.permissions import Access
from perpx.api.ratelimit import Limiter, RateLimiter
from perpx.bybit.errors import ApiError
from perpx.bybit.params import Params
from perpx.bybit.retcodes import bybit_code
from perpx.core.events import CommandRejected, Event, OrderRejected
from perpx.venue import Venue

__all__ = ["Access", "Context", "Endpoint", "Handler", "Result", "ServerInfo", "raise_rejection",
           "rejection"]


@dataclass(slots=True)
class ServerInfo:
    """What perpx's own endpoints read of the server rather than of the venue.

    `connections` is the server's connection guard (open HTTP and WebSocket connections; None
    when the app is served by something else), `sessions` the open WebSocket sessions by
    endpoint kind (the stream hub's count), `limiter` the key limiter (shared with the
    gateways on the machine), which also paces the demo accounts made for browsers.
    """

    limiter: Limiter = field(default_factory=RateLimiter)
    sessions: dict[str, int] = field(default_factory=dict)
    connections: ConnectionGuard | None = None
    # When the app was built, on the monotonic clock (uptime; the venue's clock may be a
    # replay's, so it is not used for this).
    started_s: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class Context:
    """One request's service, key store, parameters and (signed endpoints) key."""

    service: Venue
    keys: KeyStore
    params: Params
    now_ms: int
    key: ApiKey | None = None
    server: ServerInfo | None = None
    # Whether this request has waited for `Venue.caught_up` (`catch_up`): at most once.
    caught_up: bool = False

    @property
    def account_id(self) -> int:
        """The caller's account (signed endpoints only)."""
        assert self.key is not None
        return self.key.account_id

    async def catch_up(self) -> None:
        """Wait until reads show every write acknowledged to the caller before this call.

        Once per request: the dispatcher's wait (`Endpoint.reads_state`) or a handler's own,
        taken only when its answer needs it (cancel-all finding nothing to cancel), the
        first one covers the second (`Venue.caught_up` is as of the call; later is stronger).
        """
        if not self.caught_up:
            await self.service.caught_up(self.account_id)
            self.caught_up = True


Result = dict[str, Any] | tuple[dict[str, Any], dict[str, Any]]
Handler = Callable[[Context], Awaitable[Result]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One REST route.

    `reads_state`: the handler reads the venue's state before it submits (or only reads), so a
    signed request waits until reads show every write acknowledged before it arrived
    (`Venue.caught_up`, read-your-writes). False for a write that reads nothing before it
    submits but the contracts it names (its `symbol`, or each item's of a batch's `request`):
    the writer applies it to its own current state, and the wait for its own acknowledged
    seq (`Venue.submit`) covers every earlier write for what the handler reads after. The
    contract table only grows and a listed contract never changes, so the one read such a
    handler makes first is exact once the table holds every symbol named; when it does not
    (a listing not yet followed, a bad name, or none) the request waits as any other
    (`Dispatcher`). A handler that needs the wait for one outcome only takes it itself then
    (`Context.catch_up`).

    `by_coin`: a request of this endpoint naming no `symbol` (cancel-all by `baseCoin` or
    `settleCoin`) skips that wait too: its handler reads the contracts again once its own
    commands are shown, or after its own wait (`perpx.api.rest.order.cancel_all`).
    """

    method: str
    path: str
    handler: Handler
    access: Access
    reads_state: bool = True
    by_coin: bool = False


_REJECTIONS = (OrderRejected, CommandRejected)  # a tuple: `A | B` builds a union per call


def rejection(events: list[Event]) -> ApiError | None:
    """Return the ApiError for a core rejection among `events`, if any."""
    for event in events:
        if isinstance(event, _REJECTIONS):
            code, message = bybit_code(event.reason)
            return ApiError(code, message)
    return None


def raise_rejection(events: list[Event]) -> None:
    """Raise the core's rejection among `events` as Bybit's error."""
    error = rejection(events)
    if error is not None:
        raise error
