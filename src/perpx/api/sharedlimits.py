"""Per-key rate limits shared by API gateways on several machines, through NATS JetStream KV.

The limits are `api/ratelimit.py`'s (a key's `rate_limit` per one-second window, Bybit's
headers, 10006 over it); what changes is who counts. Gateways on one machine share a file;
gateways on different machines share nothing but NATS, and a round trip to it per request
would cost more than the request. So each gateway decides alone, from a **grant**: how many
of the key's requests in this window it may allow. Grants are reserved in a JetStream KV
bucket, one entry per (key, window) holding the requests granted to all gateways so far and
which gateways hold some, updated by compare-and-set on the entry's revision.

- The first request of a key in a window, at a gateway, takes a **credit** of ⌊L / G⌋ (at
  least 1; L the key's limit, G the live gateways, counted in a members bucket every
  second): no round trip, nobody else knows of it yet. Rounded down, so that gateways
  starting a window together hold at most L between them.
- Every `SYNC_S` the gateway **reserves** what it granted itself and has not reserved (its
  credit) in the entry and, if it used more than half its grant, a **top-up**: its share of
  what is left. What is left is L minus the total granted, minus a credit for each gateway
  *expected* to take one that has not reserved it yet: the key's holders in the previous
  window, as this gateway saw them at its last sync then, or, if it did not see the key
  then, every live gateway. The share divides that among the holders and the expected.
  A top-up is never more than what is left, so no top-up takes the total past L.
- Overshoot: only a credit nobody expected, i.e. a gateway taking up a key it did not serve
  in the previous window, in a window where the others were already topped up to the rest
  (a client opening a connection to a new gateway mid-second). Worst case
  L + (G − 1)·max(1, ⌊L / G⌋) per window; requests reaching the same gateways as in the
  window before stay within L (`tests/unit/api/test_shared_limits.py`).
- Undershoot: a burst at one gateway above its credit is refused until its next sync tops
  it up (≤ `SYNC_S`); in a key's first window at a gateway, the credits of every other live
  gateway are set aside, so a key reaching one gateway gets about L / G in its first
  second and L from its second on; grants another gateway holds unused stay its own
  until the window ends (≤ 1 s).
- The store down (NATS unreachable, a KV call failing or slow): every gateway counts alone
  with its grants lifted to L (the local limit, as before), logged once; requests never wait
  on the store. It is tried again every `RETRY_S` and used again, logged once, when it answers.

`SyncedLimiter` is the algorithm (no I/O: deterministic under a fake clock and a fake
store); `NatsLimits` runs it against JetStream in the gateway's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from perpx.api.ratelimit import WINDOW_MS
from perpx.stopping import stop_task

log = logging.getLogger("perpx.ratelimit")

SYNC_S = 0.05  # how often a gateway reserves and tops up its grants
MEMBERS_S = 1.0  # how often a gateway says it lives and counts the others
MEMBER_TTL_S = 3.0  # a gateway silent this long no longer counts
RETRY_S = 2.0  # how often an unreachable store is tried again
STORE_TIMEOUT_S = 1.0  # a store call slower than this counts as the store being down
COUNTS_TTL_S = 10.0  # a window's entry outlives its second by this much, then goes


@dataclass(slots=True)
class Cell:
    """One key's window at one gateway."""

    start: int  # the window's start, ms
    limit: int
    granted: int  # requests this gateway may allow in the window
    used: int = 0  # requests it allowed
    reserved: int = 0  # of `granted`, what the store holds
    seen: int = 0  # the store's total granted at the last sync (all gateways)
    holders: tuple[str, ...] = ()  # the gateways holding grants, as of the last sync
    # The gateways that held grants of the key in the previous window (None: this gateway
    # did not see it then): those expected to take credits in this one.
    expected: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    """What a sync asks the store for one cell: add `credit`, then a share of what is left."""

    key: str
    window: int  # epoch seconds
    limit: int
    credit: int
    wants_more: bool
    gateways: int = 1  # live gateways
    expected: tuple[str, ...] | None = None  # `Cell.expected`


@dataclass(frozen=True, slots=True)
class Reserved:
    """The store's answer: the top-up granted and the total granted after it."""

    topup: int
    total: int
    holders: tuple[str, ...] = ()


class Store(Protocol):
    """Where grants are reserved (JetStream KV, or a fake in tests)."""

    async def reserve(self, me: str, ask: Reservation) -> Reserved:
        """Add `ask.credit` to the entry and, if wanted, a top-up; return both, atomically."""


def top_up(limit: int, total: int, holders: int) -> int:
    """Return a gateway's share of what is left of `limit`, `total` granted among `holders`."""
    left = limit - total
    return 0 if left <= 0 else -(-left // max(1, holders))


def store_key(key: str, window: int) -> str:
    """Return the KV entry of a key's window: the key's fingerprint and the second."""
    return f"{hashlib.blake2b(key.encode(), digest_size=12).hexdigest()}.{window}"


@dataclass(slots=True)
class SyncedLimiter:
    """Count a key's requests against grants reserved in a shared store (see the module)."""

    me: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    gateways: int = 1  # live gateways (the members bucket), this one included
    shared: bool = False  # the store answers: grants apply; else each gateway counts alone
    cells: dict[str, Cell] = field(default_factory=dict)

    def hit(self, key: str, limit: int, now_ms: int) -> tuple[bool, int, int]:
        """Count one request; return (allowed, remaining, reset timestamp in ms)."""
        start = now_ms - now_ms % WINDOW_MS
        cell = self.cells.get(key)
        if cell is None or cell.start != start:
            credit = max(1, limit // max(1, self.gateways)) if self.shared else limit
            expected = (cell.holders if cell is not None and cell.holders
                        and cell.start == start - WINDOW_MS else None)
            cell = Cell(start, limit, credit, expected=expected)
            self.cells[key] = cell
            if len(self.cells) > 100_000:  # forget idle keys, as `RateLimiter` does
                self.cells = {k: c for k, c in self.cells.items() if c.start == start}
        cell.limit = limit
        # Shared, the grant alone decides: the store holds grants, not use, so what others
        # were granted is no measure of what they allowed.
        allowed = cell.used < (cell.granted if self.shared else limit)
        if allowed:
            cell.used += 1
        # What the key has left as far as this gateway knows: its own grant's rest, or more
        # if the store showed more unclaimed; none once refused (as Bybit's header says).
        others = cell.seen - cell.reserved
        remaining = 0 if not allowed else max(
            0, cell.granted - cell.used if self.shared else 0,
            min(limit - cell.used, limit - others - cell.used))
        return allowed, remaining, start + WINDOW_MS

    def pending(self, now_ms: int) -> list[Reservation]:
        """Return what a sync at `now_ms` asks the store: this window's cells that need it."""
        start = now_ms - now_ms % WINDOW_MS
        asks = []
        for key, cell in self.cells.items():
            if cell.start != start:
                continue
            credit = cell.granted - cell.reserved
            wants_more = cell.used * 2 > cell.granted and cell.seen < cell.limit
            if credit > 0 or wants_more:
                asks.append(Reservation(key, start // WINDOW_MS, cell.limit, credit, wants_more,
                                        self.gateways, cell.expected))
        return asks

    def settle(self, ask: Reservation, answer: Reserved) -> None:
        """Take the store's answer to `ask` into the cell (if its window still runs)."""
        cell = self.cells.get(ask.key)
        if cell is None or cell.start != ask.window * WINDOW_MS:
            return
        cell.reserved += ask.credit
        cell.granted += answer.topup
        cell.reserved += answer.topup
        cell.seen = answer.total
        cell.holders = answer.holders

    def go_local(self) -> None:
        """Count alone (the store is down): grants no longer bind, each allows up to L."""
        self.shared = False

    def go_shared(self, gateways: int) -> None:
        """Share again (the store answers): new windows start from ⌊L / `gateways`⌋."""
        self.gateways = max(1, gateways)
        if not self.shared:
            # Cells counted alone meanwhile hold their use as their grant: reserved at the
            # next sync, so the others see it.
            for cell in self.cells.values():
                cell.granted = max(cell.used, cell.reserved)
        self.shared = True


# -- JetStream ------------------------------------------------------------------------------


def _decode(value: bytes | None) -> tuple[int, list[str]]:
    if not value:
        return 0, []
    total, _, holders = value.decode().partition(" ")
    return int(total), [h for h in holders.split(",") if h]


class KvStore:
    """Grants in a JetStream KV bucket: an entry "TOTAL HOLDER,HOLDER" per (key, window)."""

    def __init__(self, kv: Any) -> None:
        self.kv = kv

    async def reserve(self, me: str, ask: Reservation) -> Reserved:
        """Compare-and-set the entry until no other gateway changed it in between."""
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        name = store_key(ask.key, ask.window)
        while True:
            try:
                entry = await self.kv.get(name)
                total, holders = _decode(entry.value)
                revision: int | None = entry.revision
            except KeyNotFoundError:
                total, holders, revision = 0, [], None
            known = me in holders
            if not known:
                holders.append(me)
            total += ask.credit
            topup = 0
            if ask.wants_more:
                # Gateways expected to take a credit that have not reserved it yet: what
                # they may have allowed is not left to share.
                absent = (max(0, ask.gateways - len(holders)) if ask.expected is None
                          else len(set(ask.expected) - set(holders)))
                credit_each = max(1, ask.limit // max(1, ask.gateways))
                topup = top_up(ask.limit, total + absent * credit_each, len(holders) + absent)
            total += topup
            if known and ask.credit == 0 and topup == 0:
                return Reserved(0, total, tuple(holders))  # nothing to write: just a look
            value = f"{total} {','.join(holders)}".encode()
            try:
                if revision is None:
                    await self.kv.create(name, value)
                else:
                    await self.kv.update(name, value, last=revision)
            except KeyWrongLastSequenceError:
                continue  # another gateway reserved in between: read again
            return Reserved(topup, total, tuple(holders))


class NatsLimits:
    """A `Limiter` for an API gateway: `SyncedLimiter` with its grants kept in JetStream KV.

    `hit` never waits (the limiter's state is in this process); `start` runs the syncs in
    the gateway's event loop, `close` stops them.
    """

    def __init__(self, url: str, bucket: str = "perpx_limits",
                 clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
                 sync_s: float = SYNC_S) -> None:
        self.url = url
        self.bucket = bucket
        self.clock = clock
        self.sync_s = sync_s
        self.limiter = SyncedLimiter()
        self._nc: Any = None
        self._store: Store | None = None
        self._members: Any = None
        self._task: asyncio.Task[None] | None = None
        self._down_logged = False

    def hit(self, key: str, limit: int, now_ms: int) -> tuple[bool, int, int]:
        """Count one request; return (allowed, remaining, reset timestamp in ms)."""
        return self.limiter.hit(key, limit, now_ms)

    async def start(self) -> None:
        """Start syncing (connecting in the background: requests never wait for NATS)."""
        self._task = asyncio.create_task(self._run(), name="perpx-shared-limits")

    async def close(self) -> None:
        """Stop syncing and leave NATS."""
        if self._task is not None:
            await stop_task(self._task)  # cancelled again if 3.11's wait_for swallows it
            self._task = None
        await self._disconnect()

    async def _connect(self) -> None:
        import nats
        from nats.js.api import KeyValueConfig

        async def quiet(_: Exception) -> None:
            """Say nothing per failure: `_run` says once that the store is down."""

        # One attempt, no reconnecting: `_run` retries every `RETRY_S`, counting alone between.
        self._nc = await nats.connect(self.url, connect_timeout=STORE_TIMEOUT_S,
                                      allow_reconnect=False, max_reconnect_attempts=1,
                                      reconnect_time_wait=0, error_cb=quiet)
        js = self._nc.jetstream(timeout=STORE_TIMEOUT_S)
        counts = await js.create_key_value(KeyValueConfig(bucket=self.bucket, history=1,
                                                          ttl=COUNTS_TTL_S))
        self._members = await js.create_key_value(KeyValueConfig(
            bucket=f"{self.bucket}_members", history=1, ttl=MEMBER_TTL_S))
        self._store = KvStore(counts)

    async def _disconnect(self) -> None:
        nc, self._nc, self._store, self._members = self._nc, None, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()

    async def _count_members(self) -> int:
        from nats.js.errors import NoKeysError

        await self._members.put(self.limiter.me, b"1")
        try:
            return len(await self._members.keys())
        except NoKeysError:
            return 1

    async def _run(self) -> None:
        next_members = 0.0
        while True:
            try:
                if self._store is None:
                    await asyncio.wait_for(self._connect(), 3 * STORE_TIMEOUT_S)
                    next_members = 0.0
                if time.monotonic() >= next_members:
                    gateways = await asyncio.wait_for(self._count_members(), STORE_TIMEOUT_S)
                    if not self.limiter.shared:
                        log.warning("shared rate limits: counting with %d gateways through "
                                    "%s", gateways, self.url)
                        self._down_logged = False
                    self.limiter.go_shared(gateways)
                    next_members = time.monotonic() + MEMBERS_S
                await asyncio.wait_for(self._sync(), STORE_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except Exception as failure:  # any way NATS can fail: count alone, try again
                self.limiter.go_local()
                if not self._down_logged:
                    log.warning("shared rate limits: %s unavailable (%r); each gateway counts "
                                "alone until it answers", self.url, failure)
                    self._down_logged = True
                await self._disconnect()
                await asyncio.sleep(RETRY_S)
                continue
            await asyncio.sleep(self.sync_s)

    async def _sync(self) -> None:
        store = self._store
        assert store is not None
        asks = self.limiter.pending(self.clock())
        answers = await asyncio.gather(*(store.reserve(self.limiter.me, ask) for ask in asks))
        for ask, answer in zip(asks, answers, strict=True):
            self.limiter.settle(ask, answer)


@contextlib.asynccontextmanager
async def running_limits(url: str, venue: str) -> AsyncIterator[NatsLimits | None]:
    """Run a `NatsLimits` for the venue's gateways (bucket `perpx_limits_<venue>`) if `url`."""
    if not url:
        yield None
        return
    limits = NatsLimits(url, bucket=f"perpx_limits_{venue}")
    await limits.start()
    try:
        yield limits
    finally:
        await limits.close()


def drop_buckets(url: str, bucket: str) -> None:
    """Delete a limits bucket and its members (a benchmark's or a test's, fresh to it)."""
    from nats.js.errors import NotFoundError

    async def drop() -> None:
        import nats

        nc = await nats.connect(url, connect_timeout=3)
        try:
            for name in (bucket, f"{bucket}_members"):
                with contextlib.suppress(NotFoundError):
                    await nc.jetstream().delete_key_value(name)
        finally:
            await nc.close()

    asyncio.run(drop())
