"""`perpx bench memory`: the engine really holds the orders and positions it measures, and each
costs a sane, positive number of bytes."""

from __future__ import annotations

import tracemalloc

import pytest

from perpx.bench.memory import (
    ORDERS_PER_ACCOUNT,
    measure_memory,
    open_position_bytes,
    resting_order_bytes,
)


def test_resting_orders_cost_a_positive_sane_number_of_bytes_each() -> None:
    resting = resting_order_bytes(3 * ORDERS_PER_ACCOUNT)
    assert resting["orders"] == 3 * ORDERS_PER_ACCOUNT and resting["accounts"] == 3
    # An order is a handful of Python objects: more than a bare int, far less than 100 kB.
    assert 50 < resting["bytes_per_resting_order"] < 100_000
    assert not tracemalloc.is_tracing()  # the tracer is stopped once measured


def test_open_positions_are_counted_exactly_and_cost_bytes_each() -> None:
    opened = open_position_bytes(45)  # rounded up to even: one trade opens a long and a short
    assert opened["positions"] == 46 and opened["symbols"] == 10 and opened["accounts"] == 6
    assert 50 < opened["bytes_per_open_position"] < 100_000


def test_the_summary_carries_both_figures_and_how_they_were_measured() -> None:
    summary = measure_memory(400, 400)
    assert summary["orders"] == 400 and summary["positions"] == 400
    assert summary["bytes_per_resting_order"] > 0 and summary["bytes_per_open_position"] > 0
    assert "tracemalloc" in summary["method"]


@pytest.mark.parametrize("orders, positions", [(0, 10), (10, 0)],
                         ids=["no orders is refused", "no positions is refused"])
def test_a_size_below_one_is_refused(orders: int, positions: int) -> None:
    with pytest.raises(ValueError):
        measure_memory(orders, positions)
