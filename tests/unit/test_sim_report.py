"""Simulation series, summary, charts and report folder (`perpx sim --plot/--report-dir`)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from perpx import Exchange
from perpx.cli import app
from perpx.core.enums import MarginMode, PositionMode, Side
from perpx.sim import noise_population
from perpx.sim.series import SeriesRecorder
from support.builders import PRICES, btcusdt

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


def test_sim_hours_1_plot_writes_a_png_and_a_report(tmp_path: Path) -> None:
    png, folder = tmp_path / "tmp.png", tmp_path / "report"
    result = runner.invoke(app, ["sim", "--hours", "1", "--plot", str(png),
                                 "--report-dir", str(folder)])
    assert result.exit_code == 0, result.output
    assert "insurance fund seeded / end" in result.output and "invariant checks" in result.output
    assert png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size > 10_000
    assert (folder / "chart.png").read_bytes().startswith(PNG_MAGIC)
    report = (folder / "report.md").read_text()
    assert "![chart](chart.png)" in report and "| trades |" in report
    with (folder / "series.csv").open() as rows:
        samples = list(csv.DictReader(rows))
    assert len(samples) == 61  # one a minute, both ends included
    assert samples[-1]["index"] and float(samples[-1]["open_interest"]) > 0
    assert (folder / "events.csv").read_text().startswith("time,ts_ms,kind")


def test_sim_refuses_bad_population_options() -> None:
    for option, value in (("--leverage", "5-500"), ("--margin-modes", "portfolio"),
                          ("--position-modes", "both"), ("--insurance-fund", "lots")):
        result = runner.invoke(app, ["sim", "--hours", "0.1", option, value])
        assert result.exit_code != 0, (option, result.output)


def test_a_leveraged_replay_of_real_btc_liquidates_and_moves_the_fund(tmp_path: Path) -> None:
    data = PRICES / "btcusd_1m_2023-03-01_2023-03-07.csv"
    result = runner.invoke(app, [
        "sim", "--data", str(data), "--start", "2023-03-02T23:00", "--hours", "3",
        "--traders", "16", "--leverage", "50-100", "--deposit", "1500", "--max-qty", "0.3",
        "--stop-loss", "0", "--hold-hours", "6", "--maker-qty", "0.3",
        "--insurance-fund", "2000", "--report-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    with (tmp_path / "events.csv").open() as rows:
        kinds = [row["kind"] for row in csv.DictReader(rows)]
    assert kinds.count("liquidation") > 0 and "funding" in kinds
    with (tmp_path / "series.csv").open() as rows:
        funds = {row["insurance_fund"] for row in csv.DictReader(rows)}
    assert len(funds) > 2  # seeded, then moved by takeovers


def test_noise_population_takes_leverage_and_mode_choices() -> None:
    traders = noise_population("BTCUSDT", 8, seed=3, leverage=(60, 100),
                               margin_modes=[MarginMode.ISOLATED],
                               position_modes=[PositionMode.ONE_WAY, PositionMode.HEDGE])
    assert all(60 <= t.leverage <= 100 for t in traders)
    assert {t.margin_mode for t in traders} == {MarginMode.ISOLATED}
    assert [t.position_mode for t in traders[:2]] == [PositionMode.ONE_WAY, PositionMode.HEDGE]
    default = noise_population("BTCUSDT", 4, seed=3)
    assert [(t.margin_mode, t.position_mode) for t in default] == [
        (MarginMode.CROSS, PositionMode.ONE_WAY), (MarginMode.ISOLATED, PositionMode.ONE_WAY),
        (MarginMode.CROSS, PositionMode.HEDGE), (MarginMode.ISOLATED, PositionMode.HEDGE)]
    with pytest.raises(ValueError):
        noise_population("BTCUSDT", 2, seed=3, leverage=(0, 10))


def test_the_recorder_rebuilds_equity_and_takeovers_from_events_alone() -> None:
    ex = Exchange([btcusdt()], check_invariants=True)
    recorder = SeriesRecorder(ex.engine.instruments["BTCUSDT"], every_ms=1_000)
    ex.subscribe(recorder)
    for account in (1, 2, 3):
        ex.deposit(account, "100000")
    ex.fund_insurance("5000")
    ex.index_price("BTCUSDT", "20000")
    for i in range(1, 6):
        ex.place_order(1, "BTCUSDT", "Buy", "Limit", qty="1", price=f"{20000 - 10 * i}")
        ex.place_order(2, "BTCUSDT", "Sell", "Limit", qty="1", price=f"{20000 + 10 * i}")
    ex.set_margin_mode(3, "isolated")
    ex.set_leverage(3, "BTCUSDT", "100")
    ex.place_order(3, "BTCUSDT", "Buy", "Market", qty="0.5")
    ex.advance(60_000, tick_every_ms=1_000)
    ex.index_price("BTCUSDT", "19700")
    ex.advance(60_000, tick_every_ms=1_000)
    for account in (1, 2, 3):
        assert recorder.equity_atoms(account) == ex.engine.clearing.equity_atoms(
            ex.engine.clearing.accounts[account], "USDT")
    [taken] = recorder.liquidations
    assert (taken.account_id, taken.side) == (3, Side.BUY)
    assert recorder.insurance_seeded_atoms == 5000 * 10**8
    assert recorder.insurance_atoms == ex.engine.clearing.accounts[-2].balance("USDT")
    assert recorder.samples[-1].liquidations == 1
    assert recorder.samples[0].equity_p50_atoms == 100000 * 10**8
