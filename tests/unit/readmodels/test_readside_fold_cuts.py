"""The read side's per-command cuts of issue #15 (seventh session) against the code they skip.

- `records._next_status` (the transition table with int keys) is `lifecycle.next_status` for
  every status and happening: the same status, or the core's own error for an illegal pair;
- `Tickers.apply_all` hands `PositionChanged` straight to the open interest: over seeded
  order streams, a model folded with `apply_all` per command holds exactly the state of one
  folded with `apply` on each event, and the order records the projector shows per command
  are those of the stream's engine (status, fills) — the fold's answers, command by command.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.bench.match import funded_engine, perpx_commands
from perpx.bench.stream import standard_stream
from perpx.core import lifecycle
from perpx.core.enums import OrderStatus
from perpx.core.errors import InvariantViolation
from perpx.readmodels import Tickers
from perpx.store import records
from perpx.store.records import Projector


@pytest.mark.parametrize("status", list(OrderStatus))
@pytest.mark.parametrize("happening", list(lifecycle.Happening))
def test_the_int_transition_table_is_the_core_s(status: OrderStatus,
                                                happening: lifecycle.Happening) -> None:
    # Arrange: the core's answer for the pair (a status, or its error)
    try:
        expected: int | None = int(lifecycle.next_status(int(status), happening))
    except InvariantViolation:
        expected = None
    # Act / Assert: the projector's lookup gives the same, from an int status and happening
    if expected is None:
        with pytest.raises(InvariantViolation):
            records._next_status(int(status), int(happening))
    else:
        assert records._next_status(int(status), int(happening)) == expected
        assert type(records._next_status(int(status), int(happening))) is int


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(50, 400))
def test_folding_per_command_is_folding_each_event_over_a_seeded_stream(seed: int,
                                                                      count: int) -> None:
    # Arrange: a seeded order stream through the engine, its events kept per command
    commands = perpx_commands(standard_stream(count, seed))
    engine = funded_engine()
    specs = list(engine.instruments.values())
    per_command, per_event = Tickers(specs), Tickers(specs)
    projector = Projector(specs)
    # Act / Assert: after every command the same state; the projector's touched orders show
    # the engine's fills and final statuses
    for command in commands:
        events = engine.apply(command)
        per_command.apply_all(events)
        for event in events:
            per_event.apply(event)
        assert per_command.to_state() == per_event.to_state()
        for order_id, record in projector.project(command, events).orders.items():
            live = engine.open_orders.get(order_id)
            if live is not None:
                assert record.cum_lots == live.qty_lots - live.leaves_lots
                assert record.status in (int(OrderStatus.NEW),
                                         int(OrderStatus.PARTIALLY_FILLED))
            else:
                assert records.is_final(record.status)
    for symbol in per_command.specs:
        assert per_command.ticker(symbol) == per_event.ticker(symbol)
