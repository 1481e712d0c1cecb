"""A virtual clock with asyncio's timer calls, and a transport that notes when it closed.

For the HTTP protocol's clock tests (`LimitedHttpProtocol`'s request clock and keep-alive
wait): timers run exactly when due, with no real time passing.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable


class Handle:
    """A timer of `VirtualLoop` (asyncio's `TimerHandle`: `when`, `cancel`)."""

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: Handle) -> bool:
        return self.when < other.when


class VirtualLoop:
    """A virtual clock with asyncio's `time`, `call_at` and `call_later`."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[Handle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Handle:
        handle = Handle(when, callback)
        heapq.heappush(self.timers, handle)
        return handle

    def call_later(self, delay: float, callback: Callable[[], None]) -> Handle:
        return self.call_at(self.now + delay, callback)

    def run_until(self, until: float) -> None:
        """Run the timers due by `until`, in order, then stand at `until`."""
        while self.timers and self.timers[0].when <= until:
            handle = heapq.heappop(self.timers)
            self.now = max(self.now, handle.when)
            if not handle.cancelled:
                handle.callback()
        self.now = until


class ClosingTransport:
    """A transport that notes when (on the loop's clock) it was closed."""

    def __init__(self, loop: VirtualLoop) -> None:
        self.loop = loop
        self.closed_at: float | None = None

    def is_closing(self) -> bool:
        return self.closed_at is not None

    def close(self) -> None:
        self.closed_at = self.loop.now
