"""Funding history: settled rates per symbol and funding executions per account."""

from __future__ import annotations

import pytest

from perpx.core.enums import Side
from perpx.core.errors import InvariantViolation
from perpx.core.events import FundingPaid, FundingSettled
from perpx.readmodels.funding_history import FundingExecution, FundingHistory
from support.builders import btcusdt, ethusdt

BTC = btcusdt()
ETH = ethusdt()
HOUR = 3_600_000
T0 = 1_700_006_400_000


def settle(history: FundingHistory, hour: int, rate: int, symbol: str = "BTCUSDT",
           seq: int | None = None) -> None:
    seq = hour + 1 if seq is None else seq
    history.apply(FundingSettled(seq, T0 + hour * HOUR, symbol, rate, 500_000, T0 + hour * HOUR,
                                 0, 0, 0))


def pay(history: FundingHistory, hour: int, account: int, size_lots: int, amount_atoms: int,
        symbol: str = "BTCUSDT", mark_ticks: int = 500_000, idx: int = 0) -> None:
    spec = BTC if symbol == "BTCUSDT" else ETH
    value = spec.notional_atoms(mark_ticks, abs(size_lots))
    history.apply(FundingPaid(100 + hour, T0 + hour * HOUR + 3, account, symbol, idx, size_lots,
                              value, 10_000, amount_atoms, T0 + hour * HOUR))


def test_rates_are_newest_first_within_bounds_and_limit() -> None:
    history = FundingHistory([BTC, ETH])
    for hour in range(0, 40, 8):
        settle(history, hour, 10_000 + hour)
    settle(history, 0, -5, symbol="ETHUSDT", seq=99)
    rates = history.rates("BTCUSDT")
    assert [r.funding_rate_timestamp_ms for r in rates] == [T0 + h * HOUR for h in (32, 24, 16,
                                                                                     8, 0)]
    assert [r.funding_rate for r in history.rates("BTCUSDT", limit=2)] == [10_032, 10_024]
    assert [r.funding_rate for r in history.rates(
        "BTCUSDT", start_ms=T0 + 8 * HOUR, end_ms=T0 + 24 * HOUR)] == [10_024, 10_016, 10_008]
    assert [r.funding_rate for r in history.rates(
        "BTCUSDT", end_ms=T0 + 9 * HOUR, limit=1)] == [10_008]
    assert [r.funding_rate for r in history.rates("ETHUSDT")] == [-5]
    assert history.rates("SOLUSDT") == []
    with pytest.raises(ValueError, match="limit"):
        history.rates("BTCUSDT", limit=201)


def test_a_funding_payment_reads_as_a_bybit_funding_execution() -> None:
    history = FundingHistory([BTC, ETH])
    pay(history, 8, account=7, size_lots=-250, amount_atoms=-1_562_500, mark_ticks=500_001)
    [execution] = history.executions(7)
    assert execution == FundingExecution(
        exec_id="108-7-BTCUSDT-0", account_id=7, symbol="BTCUSDT", side=Side.SELL,
        position_idx=0, exec_price_ticks=500_001, exec_qty_lots=250,
        exec_value_atoms=BTC.notional_atoms(500_001, 250), exec_fee_atoms=-1_562_500,
        fee_rate=10_000, exec_time_ms=T0 + 8 * HOUR, seq=108)
    assert execution.exec_type == "Funding"


def test_executions_filter_by_symbol_and_time_newest_first() -> None:
    history = FundingHistory([BTC, ETH])
    for hour in range(0, 48, 8):
        pay(history, hour, 1, 10, 50, symbol="BTCUSDT")
        pay(history, hour, 1, 20, 70, symbol="ETHUSDT", mark_ticks=30_000)
        pay(history, hour, 2, -10, -49)
    mine = history.executions(1)
    assert len(mine) == 12
    assert [e.exec_time_ms for e in mine] == sorted((e.exec_time_ms for e in mine), reverse=True)
    eth = history.executions(1, symbol="ETHUSDT", limit=3)
    assert [(e.symbol, e.exec_time_ms) for e in eth] == [
        ("ETHUSDT", T0 + h * HOUR) for h in (40, 32, 24)]
    window = history.executions(1, symbol="BTCUSDT", start_ms=T0 + 8 * HOUR,
                                end_ms=T0 + 16 * HOUR)
    assert [e.exec_time_ms for e in window] == [T0 + 16 * HOUR, T0 + 8 * HOUR]
    assert [e.exec_fee_atoms for e in history.executions(2, limit=2)] == [-49, -49]
    assert history.executions(3) == []
    with pytest.raises(ValueError, match="limit"):
        history.executions(1, limit=101)


def test_a_value_that_is_no_mark_times_size_is_a_bug() -> None:
    history = FundingHistory([BTC])
    with pytest.raises(InvariantViolation):
        history.apply(FundingPaid(1, T0, 1, "BTCUSDT", 0, 3, 10_001, 100, 1, T0))
