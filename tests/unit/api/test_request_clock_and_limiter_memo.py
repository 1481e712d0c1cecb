"""Two per-request cuts of issue #15 (gateway cost) against plain models.

- `LimitedHttpProtocol`'s request clock is a deadline with one timer per connection: for
  any sequence of arms, disarms and waits it closes the connection exactly when a timer
  made at each arm and cancelled at each disarm (the former code) would have;
- `SharedRateLimiter` hashes each key's fingerprint once: its verdicts equal a fresh
  in-memory count, also while its memo starts afresh.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.virtual_loop import ClosingTransport, VirtualLoop

from perpx.api import ratelimit
from perpx.api.protocol import LimitedHttpProtocol
from perpx.api.ratelimit import RateLimiter, SharedRateLimiter

TIMEOUT = 5.0


def _protocol(loop: VirtualLoop) -> Any:
    protocol: Any = object.__new__(LimitedHttpProtocol)
    protocol.loop, protocol.transport = loop, ClosingTransport(loop)
    protocol.request_timeout_s, protocol.deadline, protocol._timer = TIMEOUT, None, None
    return protocol


steps = st.lists(st.tuples(st.sampled_from(["arm", "disarm", "wait"]),
                           st.floats(0.0, 7.0, allow_nan=False)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_the_clock_closes_the_connection_when_a_timer_per_request_would(
        actions: list[tuple[str, float]]) -> None:
    # Arrange: the reference keeps one deadline, set at each arm, cleared at each disarm
    loop = VirtualLoop()
    protocol = _protocol(loop)
    expected_close: float | None = None
    deadline: float | None = None
    # Act
    for action, delay in actions:
        if expected_close is not None:
            break
        if action == "arm":
            protocol._arm()
            deadline = loop.now + TIMEOUT
        elif action == "disarm":
            protocol._disarm()
            deadline = None
        if deadline is not None and deadline <= loop.now + delay:
            expected_close = deadline
        loop.run_until(loop.now + delay)
    loop.run_until(loop.now + 2 * TIMEOUT)
    if expected_close is None and deadline is not None:
        expected_close = deadline
    # Assert
    closed = protocol.transport.closed_at
    assert (closed is None) == (expected_close is None)
    if closed is not None:
        assert closed == pytest.approx(expected_close)


def test_a_stopped_clock_leaves_no_timer_behind() -> None:
    loop = VirtualLoop()
    protocol = _protocol(loop)
    for _ in range(100):  # a keep-alive connection's requests: one timer in all
        protocol._arm()
        protocol._disarm()
    assert len([t for t in loop.timers if not t.cancelled]) == 1
    protocol._stop_clock()
    loop.run_until(3 * TIMEOUT)
    assert protocol.transport.closed_at is None and protocol._timer is None


hits = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 4_000), st.integers(1, 4)),
                min_size=1, max_size=80)


@settings(max_examples=100, deadline=None)
@given(hits, st.integers(1, 8))
def test_the_shared_limiter_counts_as_a_fresh_count_with_its_memo(
        requests: list[tuple[int, int, int]], kept: int) -> None:
    # Arrange: a memo of `kept` keys, so that it starts afresh along the way
    folder = tempfile.TemporaryDirectory(prefix="perpx-limits-")
    old = ratelimit._FINGERPRINTS_KEPT
    ratelimit._FINGERPRINTS_KEPT = kept
    shared, plain = SharedRateLimiter(Path(folder.name) / "limits"), RateLimiter()
    try:
        now = 1_700_000_000_000
        for key, step, limit in requests:
            now += step
            # Act / Assert: the same verdict, remaining and reset
            assert shared.hit(f"key-{key}", limit, now) == plain.hit(f"key-{key}", limit, now)
            assert ratelimit._fingerprint(f"key-{key}") == \
                shared._fingerprints.get(f"key-{key}", ratelimit._fingerprint(f"key-{key}"))
            assert len(shared._fingerprints) <= kept
    finally:
        ratelimit._FINGERPRINTS_KEPT = old
        shared.close()
        folder.cleanup()
