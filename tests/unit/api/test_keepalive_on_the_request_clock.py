"""uvicorn's keep-alive wait, kept on `LimitedHttpProtocol`'s one timer (issue #15).

uvicorn makes a timer when a response completes and cancels it on the next bytes; the
request clock is a deadline set when a request's first bytes come and cleared when it has
all arrived. For any sequence of bytes, completed responses and waits, with a keep-alive
longer or shorter than the request timeout, the connection closes exactly when the first
of those two timers would have fired, and not at all if neither would.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.api.protocol import LimitedHttpProtocol

TIMEOUT = 5.0


class _Handle:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: _Handle) -> bool:
        return self.when < other.when


class _Loop:
    """A virtual clock with asyncio's `call_at`/`call_later` (run exactly when due)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[_Handle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Handle:
        handle = _Handle(when, callback)
        heapq.heappush(self.timers, handle)
        return handle

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Handle:
        return self.call_at(self.now + delay, callback)

    def run_until(self, until: float) -> None:
        while self.timers and self.timers[0].when <= until:
            handle = heapq.heappop(self.timers)
            self.now = max(self.now, handle.when)
            if not handle.cancelled:
                handle.callback()
        self.now = until


class _Transport:
    def __init__(self, loop: _Loop) -> None:
        self.loop = loop
        self.closed_at: float | None = None

    def is_closing(self) -> bool:
        return self.closed_at is not None

    def close(self) -> None:
        self.closed_at = self.loop.now


class _Quiet:
    """The parser (fed, says nothing), the flow control and the server state, inert."""

    total_requests = 0
    response_complete = True

    def feed_data(self, data: bytes) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _protocol(loop: _Loop, keep_alive: float) -> Any:
    protocol: Any = object.__new__(LimitedHttpProtocol)
    protocol.loop, protocol.transport = loop, _Transport(loop)
    protocol.request_timeout_s, protocol.deadline, protocol._timer = TIMEOUT, None, None
    protocol.timeout_keep_alive, protocol.timeout_keep_alive_task = keep_alive, None
    protocol.parser = protocol.flow = protocol.server_state = _Quiet()
    protocol.cycle, protocol.pipeline = None, deque()
    return protocol


class _Cycle:
    response_complete = False


steps = st.lists(st.tuples(st.sampled_from(["bytes", "arrived", "answered", "wait"]),
                           st.floats(0.0, 9.0, allow_nan=False)), max_size=40)


@settings(max_examples=400, deadline=None)
@given(steps, st.sampled_from([2.0, TIMEOUT, 8.0]))
def test_the_connection_closes_when_the_first_of_the_two_timers_would(
        actions: list[tuple[str, float]], keep_alive: float) -> None:
    # Arrange: the reference keeps uvicorn's keep-alive timer and the request deadline apart
    loop = _Loop()
    protocol = _protocol(loop, keep_alive)
    expected_close: float | None = None
    request: float | None = None
    idle: float | None = None
    answering = False
    # Act
    for action, delay in actions:
        if expected_close is not None:
            break
        if action == "bytes":  # some of a request's bytes (while one is answered: the next's)
            protocol.data_received(b"x")
            idle = None
            if request is None and not answering:
                request = loop.now + TIMEOUT
        elif action == "arrived" and not answering:  # its last bytes: the app answers it
            protocol._disarm()
            protocol.cycle = _Cycle()
            request, answering = None, True
        elif action == "answered" and answering:  # its response complete
            protocol.cycle.response_complete = True
            protocol.on_response_complete()
            idle, answering = loop.now + keep_alive, False
        due = min((t for t in (request, idle) if t is not None), default=None)
        if due is not None and due <= loop.now + delay:
            expected_close = due
        loop.run_until(loop.now + delay)
    due = min((t for t in (request, idle) if t is not None), default=None)
    loop.run_until(loop.now + 3 * max(TIMEOUT, keep_alive))
    if expected_close is None:
        expected_close = due
    # Assert
    closed = protocol.transport.closed_at
    assert (closed is None) == (expected_close is None)
    if closed is not None:
        assert closed == pytest.approx(expected_close)
    assert protocol.timeout_keep_alive_task is None  # no timer of uvicorn's own was made


def test_requests_on_a_kept_alive_connection_make_one_timer() -> None:
    loop = _Loop()
    protocol = _protocol(loop, 75.0)
    for _ in range(100):
        protocol.data_received(b"x")
        protocol._disarm()
        protocol.on_response_complete()
        loop.run_until(loop.now + 0.01)
    assert len([t for t in loop.timers if not t.cancelled]) == 1
    protocol._stop_clock()
    loop.run_until(loop.now + 200.0)
    assert protocol.transport.closed_at is None and protocol._timer is None
