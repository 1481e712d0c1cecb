"""The engine's contract: seq and time only move forward; a restore is a full engine."""

from __future__ import annotations

import pytest

from perpx.core import Engine
from perpx.core.commands import Deposit, MarkPrice
from perpx.core.errors import InvariantViolation
from support.builders import btcusdt


def test_a_restored_engine_reads_the_marks_it_is_given_later() -> None:
    spec = btcusdt()
    restored = Engine.from_snapshot([spec], Engine([spec]).to_snapshot())
    restored.apply(MarkPrice(1, 1, "BTCUSDT", 500_000))
    assert restored.clearing.published_mark_of("BTCUSDT") == 500_000
    assert restored.clearing.mark_of("BTCUSDT") == 500_000


@pytest.mark.parametrize(("seq", "ts_ms"), [(5, 100), (7, 99)],
                         ids=["seq not rising", "time running back"])
def test_out_of_order_commands_are_a_sequencer_bug(seq: int, ts_ms: int) -> None:
    engine = Engine([btcusdt()])
    engine.apply(Deposit(5, 100, 1, "USDT", 10**8))
    with pytest.raises(InvariantViolation):
        engine.apply(Deposit(seq, ts_ms, 1, "USDT", 10**8))
