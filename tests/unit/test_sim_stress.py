"""Stress reports (issue #19 items 3-4): sweeps, block bootstrap, fund sizing, report files."""

from __future__ import annotations

import csv
import random
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from perpx.cli import app
from perpx.convert import to_atoms
from perpx.instruments import bundled_instruments
from perpx.sim import stress
from perpx.sim.scenario import ScenarioError
from support.builders import PRICES

MARCH = PRICES / "btcusd_1m_2023-03-01_2023-03-07.csv"
FALL_MS = 1_677_803_400_000  # 2023-03-03 00:30 UTC, half an hour before the 01:00 fall
SPEC = next(s for s in bundled_instruments() if s.symbol == "BTCUSDT")
runner = CliRunner()


def _small_sweep() -> list[stress.RunSpec]:
    doc, name = stress.load_doc("default")
    stress.apply_override(doc, "run.check_every", "400")  # invariants every 400 commands
    axes = stress.parse_sweep(["insurance_fund=500,50000", "max_leverage=100"])
    return stress.sweep_runs(doc, name, axes, spec=SPEC, data=str(MARCH), start_ms=FALL_MS,
                             hours=1.0)


def test_a_2x1_sweep_is_reproducible_to_the_event_and_checks_invariants_in_every_run() -> None:
    runs = _small_sweep()
    assert [r.params for r in runs] == [
        (("insurance_fund", "500"), ("max_leverage", "100")),
        (("insurance_fund", "50000"), ("max_leverage", "100"))]
    first = stress.run_all(runs, workers=2)  # in worker processes
    second = stress.run_all(runs, workers=1)  # in this one
    for a, b in zip(first, second, strict=True):
        assert a.digest == b.digest and a.row() == b.row() and a.fund_path == b.fund_path
        # A check every 400 commands plus the one at the end: none raised.
        assert a.invariant_checks == a.commands // 400 + 1 >= 5
    assert first[0].fund_start == to_atoms("500") and first[1].fund_start == to_atoms("50000")
    assert first[0].liquidation_times  # the fall liquidates the 100x retail


def test_figures_of_a_run_from_its_fund_path_and_liquidations() -> None:
    result = stress.RunResult(
        "r", (), [(60_000, 80), (120_000, 120), (180_000, 30), (240_000, 100)], 100,
        [0, 60_000, 299_999, 300_000, 900_000], 0, 0, 0, 0, 0, "")
    assert result.max_drawdown() == 90 and result.fund_min == 30 and result.fund_end == 100
    assert result.deepest_cascade() == 3  # [0, 300 000) holds three
    assert result.recovery_ms() == 180_000  # below at 1 min, back at 4 min (after the low)
    assert not result.exhausted()


def test_max_leverage_caps_the_retail_distribution_and_bad_keys_are_refused() -> None:
    doc, _ = stress.load_doc("default")
    stress.apply_override(doc, "max_leverage", "20")
    weights = dict((lev, w) for lev, w in doc["retail"]["leverage"])
    assert max(weights) == 20 and weights[20] == pytest.approx(0.25 + 0.2 + 0.1 + 0.05)
    stress.apply_override(doc, "maker_depth", "0.1")
    assert all(m["level_qty"] == "0.1" for m in doc["makers"])
    with pytest.raises(ScenarioError, match="unknown field"):
        stress.apply_override(doc, "run.nope", "1")
    with pytest.raises(ScenarioError, match="KEY=V1"):
        stress.parse_sweep(["insurance_fund"])


def test_the_block_bootstrap_is_seeded_and_keeps_each_blocks_returns() -> None:
    _, first, returns = stress.minute_returns(MARCH)
    blocks = stress.bootstrap_blocks(returns, 300, 60, random.Random(5))
    assert blocks == stress.bootstrap_blocks(returns, 300, 60, random.Random(5))
    assert blocks != stress.bootstrap_blocks(returns, 300, 60, random.Random(6))
    assert len(blocks) == 5
    # The path's returns, block by block, are the sample's: the same multiset, in order.
    path = stress.bootstrap_path(returns, first, 0, 300, 60, random.Random(5), SPEC.tick_size)
    assert path == stress.bootstrap_path(returns, first, 0, 300, 60, random.Random(5),
                                         SPEC.tick_size)
    assert len(path) == 301 and path[1][0] - path[0][0] == 60_000
    drawn = stress.bootstrap_returns(returns, 300, 60, random.Random(5))
    assert len(drawn) == 300
    for k, start in enumerate(blocks):
        assert start + 60 <= len(returns)
        assert Counter(drawn[k * 60:(k + 1) * 60]) == Counter(returns[start:start + 60])
    # A last block longer than the remaining steps is cut.
    cut = stress.bootstrap_returns(returns, 90, 60, random.Random(5))
    assert cut[60:] == returns[blocks[1]:blocks[1] + 30]


def test_sweep_and_fund_sizing_reports_have_their_files_and_columns(tmp_path: Path) -> None:
    sweep_dir, sizing_dir = tmp_path / "sweep", tmp_path / "sizing"
    result = runner.invoke(app, [
        "sim", "--scenario", "default", "--data", str(MARCH), "--start", "2023-03-03T00:30",
        "--hours", "0.5", "--sweep", "insurance_fund=500,5000", "--sweep",
        "max_leverage=50,100", "--workers", "2", "--report-dir", str(sweep_dir)])
    assert result.exit_code == 0, result.output
    with (sweep_dir / "summary.csv").open() as rows:
        table = list(csv.DictReader(rows))
    assert list(table[0]) == stress.SUMMARY_COLUMNS and len(table) == 4
    for name in ("fund_paths.csv", "summary.md", "fund_paths.png", "heatmaps.png"):
        assert (sweep_dir / name).stat().st_size > 0
    result = runner.invoke(app, [
        "sim", "--scenario", "default", "--data", str(MARCH), "--fund-sizing", "--paths", "2",
        "--horizon-hours", "0.5", "--funds", "100,1000", "--workers", "1",
        "--report-dir", str(sizing_dir)])
    assert result.exit_code == 0, result.output
    with (sizing_dir / "exhaustion.csv").open() as rows:
        curve = list(csv.DictReader(rows))
    assert list(curve[0]) == stress.EXHAUSTION_COLUMNS
    assert [row["insurance_fund"] for row in curve] == ["100", "1000"]
    assert all(row["paths"] == "2" for row in curve)
    for name in ("runs.csv", "report.md", "exhaustion.png"):
        assert (sizing_dir / name).stat().st_size > 0


@pytest.mark.parametrize(("name", "hours"), [("calm", 1.0), ("crash", 2.0)])
def test_every_bundled_scenario_sweeps_reproducibly_with_invariants_and_adl_causes(
        name: str, hours: float) -> None:
    doc, _ = stress.load_doc(name)
    stress.apply_override(doc, "run.check_every", "500")
    axes = stress.parse_sweep(["insurance_fund=10,20000"])
    runs = stress.sweep_runs(doc, name, axes, spec=SPEC, data=str(MARCH), start_ms=FALL_MS,
                             hours=hours)
    first = stress.run_all(runs, workers=2)
    second = stress.run_all(runs, workers=1)
    for a, b in zip(first, second, strict=True):
        assert a.digest == b.digest and a.row() == b.row()
        assert a.invariant_checks == a.commands // 500 + 1 >= 2  # all held
        # Every ADL step has one cause, derived from the takeover's events.
        assert sum(a.adl_causes.values()) == a.adl_steps
    if name == "crash":  # the fall: the thin book sends takeovers to ADL; 10 USDT runs out
        small, large = first
        assert small.adl_steps and small.adl_causes["book"] and small.adl_causes["fund"]
        assert small.exhausted() and not large.exhausted() and not large.adl_causes["fund"]
