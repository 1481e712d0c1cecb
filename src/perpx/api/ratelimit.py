"""Per-key request limits in fixed one-second windows, reported with Bybit's headers.

`X-Bapi-Limit` is the key's limit per second, `X-Bapi-Limit-Status` what is left in the
current window and `X-Bapi-Limit-Reset-Timestamp` (ms) when the window ends; a request over
the limit is answered 10006 (pybit sleeps until the reset timestamp and retries).

One process counts in memory (`RateLimiter`). API gateways on one machine count in one
table they share (`SharedRateLimiter`, a file in the data folder mapped into each), so a key
gets its limit per second however many gateways its connections reach, as in one process.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import struct
from collections.abc import Iterator
from fcntl import LOCK_EX, LOCK_UN, flock  # POSIX only, as SO_REUSEPORT gateways are
from pathlib import Path
from typing import Protocol

WINDOW_MS = 1000


class Limiter(Protocol):
    """Counts a key's requests: `RateLimiter` in one process, `SharedRateLimiter` across."""

    def hit(self, key: str, limit: int, now_ms: int) -> tuple[bool, int, int]:
        """Count one request; return (allowed, remaining, reset timestamp in ms)."""


def _verdict(used: int, limit: int, start: int) -> tuple[bool, int, int]:
    return used <= limit, max(0, limit - used), start + WINDOW_MS


class RateLimiter:
    """Count requests per key in the current one-second window."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}

    def hit(self, key: str, limit: int, now_ms: int) -> tuple[bool, int, int]:
        """Count one request; return (allowed, remaining, reset timestamp in ms)."""
        start = now_ms - now_ms % WINDOW_MS
        window_start, used = self._windows.get(key, (start, 0))
        if window_start != start:
            used = 0
        used += 1
        self._windows[key] = (start, used)
        if len(self._windows) > 100_000:  # forget idle keys; they restart a fresh window
            self._windows = {k: v for k, v in self._windows.items() if v[0] == start}
        return _verdict(used, limit, start)


# A slot: the key's 8-byte fingerprint (0: free), its window (epoch seconds), its count.
_SLOT = struct.Struct("<QII")
SLOTS = 1 << 16  # keys active in one second, with room to spare (1.5 MB)
PROBE = 16  # slots looked at from a key's home slot


class SharedRateLimiter:
    """The same counting in a table every gateway on the machine maps (`path`, 0600).

    Each hit locks the file (`flock`, two system calls), finds the key's slot by its
    fingerprint within `PROBE` slots of its home, and counts there. A slot whose window has
    passed is free for any key. Should every slot near a key's home be taken by keys active
    in this very second (tens of thousands of them), the key is counted in this process's
    memory instead, i.e. per gateway, as before.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < SLOTS * _SLOT.size:
                with _locked(fd):
                    if os.fstat(fd).st_size < SLOTS * _SLOT.size:
                        os.ftruncate(fd, SLOTS * _SLOT.size)  # zeros: every slot free
            self._map = mmap.mmap(fd, SLOTS * _SLOT.size)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._local = RateLimiter()
        # Each key's fingerprint, hashed once (a key sends many requests a second).
        self._fingerprints: dict[str, int] = {}

    def hit(self, key: str, limit: int, now_ms: int) -> tuple[bool, int, int]:
        """Count one request; return (allowed, remaining, reset timestamp in ms)."""
        start = now_ms - now_ms % WINDOW_MS
        window = start // WINDOW_MS
        fingerprint = self._fingerprints.get(key)
        if fingerprint is None:
            fingerprint = _fingerprint(key)
            if len(self._fingerprints) >= _FINGERPRINTS_KEPT:
                self._fingerprints.clear()
            self._fingerprints[key] = fingerprint
        home = fingerprint % SLOTS
        table = self._map
        fd = self._fd
        # The lock taken and released in place, not through `_locked`: a generator-based
        # context manager costs more than the two system calls it wraps, on every request.
        flock(fd, LOCK_EX)
        try:
            spare = -1
            for step in range(PROBE):
                offset = ((home + step) % SLOTS) * _SLOT.size
                owner, seen, used = _SLOT.unpack_from(table, offset)
                if owner == fingerprint:
                    used = used + 1 if seen == window else 1
                    _SLOT.pack_into(table, offset, fingerprint, window, used)
                    return _verdict(used, limit, start)
                if spare < 0 and (owner == 0 or seen != window):
                    spare = offset
            if spare >= 0:
                _SLOT.pack_into(table, spare, fingerprint, window, 1)
                return _verdict(1, limit, start)
        finally:
            flock(fd, LOCK_UN)
        return self._local.hit(key, limit, now_ms)

    def close(self) -> None:
        """Unmap the table and close the file."""
        self._map.close()
        os.close(self._fd)


# Fingerprints kept per limiter before the memo starts afresh (keys active at once).
_FINGERPRINTS_KEPT = 65_536


def _fingerprint(key: str) -> int:
    """Return a key's 8-byte slot owner: its BLAKE2b digest, never 0 (a free slot)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") or 1


@contextlib.contextmanager
def _locked(fd: int) -> Iterator[None]:
    flock(fd, LOCK_EX)
    try:
        yield
    finally:
        flock(fd, LOCK_UN)
