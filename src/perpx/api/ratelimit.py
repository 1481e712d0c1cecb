"""Per-key request limits in fixed one-second windows, reported with Bybit's headers.

`X-Bapi-Limit` is the key's limit per second, `X-Bapi-Limit-Status` what is left in the
current window and `X-Bapi-Limit-Reset-Timestamp` (ms) when the window ends; a request over
the limit is answered 10006 (pybit sleeps until the reset timestamp and retries).
"""

from __future__ import annotations

WINDOW_MS = 1000


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
        return used <= limit, max(0, limit - used), start + WINDOW_MS
