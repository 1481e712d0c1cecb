"""`perpx bench risk` with multi-coin accounts: BTC-collateral cross pools in the population."""

from __future__ import annotations

from perpx.bench.risk import bench_risk


def test_pooled_accounts_are_built_liquidated_and_none_left_breached() -> None:
    lines: list[str] = []
    summary = bench_risk(400, 2, echo=lines.append, pooled_every=2)
    # Every other cross pair (half the accounts are cross) holds BTC: a quarter of accounts.
    assert summary["pooled_accounts"] == 100 and summary["pooled_positions"] == 200
    assert summary["positions"] == 800
    # The 10% fall of SYM0USDT (which prices BTC) liquidates pools, and leaves none breached.
    assert summary["pooled_liquidated"] > 0 and summary["breached_left_after"] == 0


def test_without_pooled_accounts_the_population_is_as_before() -> None:
    summary = bench_risk(400, 2, echo=lambda _line: None, pooled_every=0)
    assert summary["pooled_accounts"] == 0 and summary["pooled_liquidated"] == 0
    assert summary["breached_left_after"] == 0
