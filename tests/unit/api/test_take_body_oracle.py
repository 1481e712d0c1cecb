"""`take_body` (`perpx.api.replywriter`) against uvicorn's `RequestResponseCycle.receive`.

Two cycles in the same state, for any state a cycle can be in when the app reads its body
(more to come or not, waiting for a 100-continue, disconnected, answered, its event set or
not, reading paused or not, any body): where `take_body` takes the body, uvicorn's
`receive` returns that body with no more to come, at once, and leaves the same cycle
(body, event, reading, transport calls); where it does not, it leaves the cycle untouched.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from perpx.api.replywriter import take_body


class _Transport:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


def _cycle(state: dict[str, Any]) -> tuple[RequestResponseCycle, _Transport]:
    transport = _Transport()
    flow = FlowControl(transport)  # type: ignore[arg-type]
    flow.read_paused = state["paused"]
    cycle = RequestResponseCycle(
        {"type": "http", "method": "POST"},  # type: ignore[arg-type]
        transport, flow, logging.getLogger("test"),  # type: ignore[arg-type]
        logging.getLogger("test.access"), False, [], asyncio.Event(),
        state["expect_100"], True, lambda: None)
    cycle.body = bytearray(state["body"])
    cycle.more_body = state["more_body"]
    cycle.disconnected = state["disconnected"]
    cycle.response_complete = state["complete"]
    if state["event"]:
        cycle.message_event.set()
    return cycle, transport


def _seen(cycle: RequestResponseCycle, transport: _Transport) -> tuple[Any, ...]:
    return (bytes(cycle.body), cycle.more_body, cycle.message_event.is_set(),
            cycle.flow.read_paused, cycle.waiting_for_100_continue, tuple(transport.calls),
            tuple(transport.written))


_TAKEN = [{"body": b'{"a":1}', "more_body": False, "expect_100": False, "disconnected": False,
           "complete": False, "event": True, "paused": True},
          {"body": b"", "more_body": False, "expect_100": False, "disconnected": False,
           "complete": False, "event": True, "paused": False}]


@settings(max_examples=400, deadline=None)
@given(st.fixed_dictionaries({
    "body": st.binary(max_size=40), "more_body": st.booleans(), "expect_100": st.booleans(),
    "disconnected": st.booleans(), "complete": st.booleans(), "event": st.booleans(),
    "paused": st.booleans()}))
@example(_TAKEN[0])
@example(_TAKEN[1])
def test_take_body_is_receive_when_the_body_is_whole(state: dict[str, Any]) -> None:
    ours, our_transport = _cycle(state)
    theirs, their_transport = _cycle(state)
    before = _seen(ours, our_transport)
    taken = take_body(ours.receive)
    if state in _TAKEN:  # the two examples: a whole body, so it is taken
        assert taken is not None
    if taken is None:
        assert _seen(ours, our_transport) == before
        return

    # At once: driven one step, a receive that had to wait would suspend instead.
    step = theirs.receive()
    try:
        step.send(None)
    except StopIteration as done:
        message = done.value
    else:
        step.close()
        raise AssertionError("uvicorn's receive waited where take_body took the body")
    assert message == {"type": "http.request", "body": taken, "more_body": False}
    assert taken == state["body"]
    assert _seen(ours, our_transport) == _seen(theirs, their_transport)


def test_a_receive_not_uvicorns_is_left_alone() -> None:
    async def receive() -> dict[str, Any]:
        raise AssertionError("not called")

    assert take_body(receive) is None
