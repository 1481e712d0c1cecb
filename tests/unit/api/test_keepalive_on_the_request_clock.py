"""uvicorn's keep-alive wait, kept on `LimitedHttpProtocol`'s one timer (issue #15).

uvicorn makes a timer when a response completes and cancels it on the next bytes; the
request clock is a deadline set when a request's first bytes come and cleared when it has
all arrived. For any sequence of bytes, completed responses and waits, with a keep-alive
longer or shorter than the request timeout, the connection closes exactly when the first
of those two timers would have fired, and not at all if neither would.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.virtual_loop import ClosingTransport, VirtualLoop

from perpx.api.protocol import LimitedHttpProtocol

TIMEOUT = 5.0


class _Quiet:
    """The parser (fed, says nothing), the flow control and the server state, inert."""

    total_requests = 0
    response_complete = True

    def feed_data(self, data: bytes) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _protocol(loop: VirtualLoop, keep_alive: float) -> Any:
    protocol: Any = object.__new__(LimitedHttpProtocol)
    protocol.loop, protocol.transport = loop, ClosingTransport(loop)
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
    loop = VirtualLoop()
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
    loop = VirtualLoop()
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
