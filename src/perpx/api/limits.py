"""Resource limits of the live API: what one client, or all of them, may hold or send.

`Limits` gathers every figure with the default a public exchange would choose; `serve`,
`ServerThread` and `create_app` take one. `ConnectionGuard` counts open connections per
client address and in total, `AddressThrottle` counts public requests per client address.
Both key a client by `address_key`: the IPv4 address, or the /64 an IPv6 host is given (one
IPv6 host owns a whole /64, so counting single IPv6 addresses would count nothing).
"""

from __future__ import annotations

import ipaddress
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class Limits:
    """Every resource limit of the API, with its default."""

    # Bybit's largest request body (a 20-order batch) is a few KB; a body over this is
    # answered 413 before it is read whole or authenticated.
    max_body_bytes: int = MIB
    # A request's bytes, head and body, must all arrive within this long of its first byte
    # (or of the connection, for the first request): slowloris and silent sockets close.
    request_timeout_s: float = 10.0
    # An idle keep-alive connection that completed a request stays this long: above the
    # 60 s idle timeout of common client pools, so a pooled connection is not cut under them.
    keep_alive_s: int = 75
    max_connections_per_address: int = 500
    # Total open connections; `connection_cap` lowers it to fit the descriptor limit.
    max_connections: int = 10_000
    # Descriptors kept for everything but client sockets: journal, history, snapshots, logs.
    fd_reserve: int = 256
    # Bybit's IP limit: 600 requests per 5 s on the public (unsigned) endpoints.
    public_requests: int = 600
    public_window_ms: int = 5_000
    # Addresses the public throttle remembers at once (its memory bound).
    public_tracked_addresses: int = 100_000
    # Largest WebSocket message a client may send (Bybit's requests are a few KB).
    ws_max_message_bytes: int = MIB
    # permessage-deflate on WebSocket streams. Off: a deflate context is per connection, so
    # with it every public frame is compressed once per subscriber (a third of a gateway's
    # CPU with 1,000 subscribers, `perpx bench ws --gateways`), where without it the frame
    # encoded once per topic is written as it is to every subscriber.
    ws_compression: bool = False

    def connection_cap(self) -> int:
        """Total connections allowed: `max_connections`, within descriptors minus the reserve."""
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return max(1, min(self.max_connections, soft - self.fd_reserve))


class BodyTooLarge(Exception):
    """A request body declared or sent longer than `Limits.max_body_bytes`."""


def address_key(host: str) -> str:
    """Return the key a client address is counted under (an IPv6 address's /64)."""
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return host
    if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d: an IPv4 client, dual-stack socket
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


class Slot:
    """One open connection counted by a `ConnectionGuard`; `release` it once it closes."""

    __slots__ = ("_guard", "key")

    def __init__(self, guard: ConnectionGuard, key: str) -> None:
        self._guard: ConnectionGuard | None = guard
        self.key = key

    def release(self) -> None:
        """Uncount the connection; a second call does nothing."""
        guard, self._guard = self._guard, None
        if guard is not None:
            guard._release(self.key)


class ConnectionGuard:
    """Count open connections per client address and in total; refuse those over a cap."""

    def __init__(self, per_address: int, total: int) -> None:
        self.per_address = per_address
        self.total = total
        self.open = 0
        self.refused = 0
        self._by_address: dict[str, int] = {}

    def acquire(self, host: str) -> Slot | str:
        """Count a new connection from `host`: its `Slot`, or why it is refused."""
        key = address_key(host)
        used = self._by_address.get(key, 0)
        if used >= self.per_address:
            self.refused += 1
            return "address"
        if self.open >= self.total:
            self.refused += 1
            return "total"
        self._by_address[key] = used + 1
        self.open += 1
        return Slot(self, key)

    def count(self, host: str) -> int:
        """Open connections counted for `host`'s key."""
        return self._by_address.get(address_key(host), 0)

    def _release(self, key: str) -> None:
        self.open -= 1
        left = self._by_address[key] - 1
        if left:
            self._by_address[key] = left
        else:  # memory holds only addresses with an open connection
            del self._by_address[key]


def monotonic_ms() -> int:
    """Milliseconds of the monotonic clock: throttles count real time, not the service clock."""
    return time.monotonic_ns() // 1_000_000


class AddressThrottle:
    """At most `limit` requests per client address in each fixed window of `window_ms`.

    Memory is bounded: beyond `tracked` addresses, those of past windows are forgotten, and
    if every one is in the current window the oldest are (a forgotten address starts a fresh
    window: the bound can only make the throttle lenient, never refuse a client wrongly).
    """

    def __init__(self, limit: int, window_ms: int, tracked: int,
                 clock: Callable[[], int] = monotonic_ms) -> None:
        self.limit = limit
        self.window_ms = window_ms
        self.tracked = tracked
        self.clock = clock
        self._windows: dict[str, tuple[int, int]] = {}

    def allow(self, host: str) -> bool:
        """Count one request from `host`; False when it is over the limit."""
        now = self.clock()
        start = now - now % self.window_ms
        key = address_key(host)
        window_start, used = self._windows.get(key, (start, 0))
        if window_start != start:
            used = 0
        used += 1
        self._windows[key] = (start, used)
        if len(self._windows) > self.tracked:
            self._forget(start)
        return used <= self.limit

    def _forget(self, start: int) -> None:
        self._windows = {k: v for k, v in self._windows.items() if v[0] == start}
        while len(self._windows) > self.tracked:
            del self._windows[next(iter(self._windows))]

    def __len__(self) -> int:
        return len(self._windows)
