"""Who may act on `/v5/private` and `/v5/trade`: auth, each command's permission, revocation.

A session remembers the API key that authenticated it. Every `/v5/trade` command goes
through the same permission check as REST (`perpx.api.permissions.authorize`) when it is
executed, and counts against the key's REST rate limit (the same `RateLimiter`, the same
key, Bybit's 10006). Keys are revoked by `perpx keys revoke` in another process, so a watch
task asks the key store every `poll_s` which of the keys with open sessions are revoked now,
and closes their sessions (close code 1008). A key's first WebSocket auth credits its demo
funds, as its first REST request would.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Protocol

from perpx.api.auth import DEFAULT_LIMITS, AuthLimits, authenticate_ws
from perpx.api.keys import ApiKey
from perpx.api.permissions import Access, KeyLookup, authorize
from perpx.api.ratelimit import Limiter, RateLimiter
from perpx.api.ws.connection import REVOKED_CLOSE_CODE, Connection
from perpx.bybit.errors import ApiError

log = logging.getLogger("perpx.api.ws")

POLL_S = 0.5
Fund = Callable[[ApiKey], Awaitable[None]]


class SessionKeys(KeyLookup, Protocol):
    """A key store the gate can also ask which keys are revoked now (`KeyStore`)."""

    def revoked_among(self, api_keys: Collection[str]) -> set[str]:
        """Return those of `api_keys` that are revoked (or unknown) now."""
        ...


class NoKeys(SessionKeys):
    """No key at all: every auth is refused (public-only servers, benchmarks)."""

    def get(self, api_key: str) -> ApiKey | None:
        """Know no key."""
        return None

    def revoked_among(self, api_keys: Collection[str]) -> set[str]:
        """Every key is unknown."""
        return set(api_keys)


def wall_ms() -> int:
    """Wall-clock milliseconds."""
    return time.time_ns() // 1_000_000


class Gate:
    """Authentication, per-command permission and rate limit, and revocation of sessions."""

    def __init__(self, keys: SessionKeys, *, limits: AuthLimits = DEFAULT_LIMITS,
                 limiter: Limiter | None = None, clock: Callable[[], int] = wall_ms,
                 fund: Fund | None = None, poll_s: float = POLL_S) -> None:
        """`clock` must be the REST dispatcher's, so both count in the same windows."""
        self.keys = keys
        self.limits = limits
        self.limiter = limiter if limiter is not None else RateLimiter()
        self.clock = clock
        self.fund = fund
        self.poll_s = poll_s
        self.sessions: dict[str, set[Connection]] = {}
        self._watcher: asyncio.Task[None] | None = None

    async def admit(self, conn: Connection, api_key: str, expires_ms: int,
                    signature: str) -> ApiKey:
        """Authenticate `conn` with an auth frame's arguments; raise ApiError if refused."""
        key = authenticate_ws(self.keys, api_key, expires_ms, signature, self.clock(),
                              self.limits)
        conn.api_key = key.api_key
        self.sessions.setdefault(key.api_key, set()).add(conn)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch())
        if self.fund is not None:
            await self.fund(key)
        return key

    def release(self, conn: Connection) -> None:
        """Forget a session that ended."""
        if conn.api_key is None:
            return
        found = self.sessions.get(conn.api_key)
        if found is not None:
            found.discard(conn)
            if not found:
                del self.sessions[conn.api_key]

    def check(self, conn: Connection, access: Access) -> ApiKey:
        """Return the session's key if it may act now with `access`; raise Bybit's error.

        Unauthenticated or revoked: 10003; read-only asked to trade: 10005; over the key's
        rate limit (shared with REST): 10006.
        """
        if conn.api_key is None:
            raise ApiError(10003, "Request not authorized")
        key = authorize(self.keys, conn.api_key, access)
        allowed, _, _ = self.limiter.hit(key.api_key, key.rate_limit, self.clock())
        if not allowed:
            raise ApiError(10006, "Too many visits. Exceeded the API Rate Limit.")
        return key

    def close_revoked(self) -> int:
        """Close the sessions of every key revoked now; return how many were closed."""
        if not self.sessions:
            return 0
        closed = 0
        for api_key in self.keys.revoked_among(list(self.sessions)):
            for conn in self.sessions.pop(api_key, set()):
                conn.close(REVOKED_CLOSE_CODE, "API key revoked")
                closed += 1
        return closed

    async def _watch(self) -> None:
        """Poll for revoked keys while any session is authenticated."""
        while self.sessions:
            await asyncio.sleep(self.poll_s)
            try:
                self.close_revoked()
            except Exception:  # a busy or broken keys.db: keep watching, say so
                log.exception("revocation check failed; retrying in %.1f s", self.poll_s)
