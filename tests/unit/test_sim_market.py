"""Scenario files and the decision rules of the market agents (issue #19)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from perpx.cli import app
from perpx.core.enums import Side
from perpx.core.numbers import RATE_ONE
from perpx.sim.agents import NoiseTrader
from perpx.sim.market import Arbitrageur, DepthMaker, IndexWindow, SignalTrader
from perpx.sim.scenario import ScenarioError, load_scenario, parse_scenario
from support.builders import PRICES


def test_the_bundled_default_scenario_parses_into_about_fifty_agents() -> None:
    scenario = load_scenario("default")
    agents = scenario.agents("BTCUSDT")
    assert 45 <= len(agents) <= 55
    assert {type(a) for a in agents} == {DepthMaker, Arbitrageur, SignalTrader, NoiseTrader}
    assert len({a.account_id for a in agents}) == len(agents)
    leverages = {a.leverage for a in agents if isinstance(a, NoiseTrader)}
    assert len(leverages) > 3 and max(leverages) >= 50  # a distribution, not one value
    assert scenario.step_ms == 60_000 and scenario.insurance_fund == "1000000"


def test_agents_of_a_scenario_are_the_same_for_the_same_seed() -> None:
    scenario = load_scenario("default")
    first = [(a.account_id, getattr(a, "leverage", 0)) for a in scenario.agents("BTCUSDT", 5)]
    again = [(a.account_id, getattr(a, "leverage", 0)) for a in scenario.agents("BTCUSDT", 5)]
    assert first == again


@pytest.mark.parametrize(("text", "message"), [
    ("[[makers]]\nlevelz = 3\n", "makers[0].levelz: unknown field"),
    ("[[makers]]\nlevels = \"3\"\n", "makers[0].levels: a int"),
    ("[run]\nstep_ms = 0\n", "run.step_ms: positive"),
    ("[run]\nspeed = 1\n", "run.speed: unknown field"),
    ("[casino]\n", "casino: unknown table"),
    ("[retail]\nleverage = [[500, 1]]\n", "retail.leverage"),
    ("[retail]\nmargin_modes = [\"unified\"]\n", "retail.margin_modes"),
    ("[retail]\nleverage = 20\n", "retail.leverage: a list"),
    ("[[signals]]\nstyle = \"momentum\"\n", "style trend or revert"),
    ("[[arbitrageurs]]\nentry = \"lots\"\n", "arbitrageurs"),
    ("run = [\n", "not TOML"),
])
def test_a_bad_scenario_is_refused_with_the_field_named(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_scenario(text)


def test_perpx_sim_refuses_a_bad_scenario_file_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "venue.toml"
    bad.write_text("[[makers]]\nlevelz = 3\n")
    result = CliRunner().invoke(app, ["sim", "--scenario", str(bad), "--hours", "0.1"])
    assert result.exit_code == 2
    assert "levelz: unknown field" in result.output
    result = CliRunner().invoke(app, ["sim", "--scenario", "nosuch", "--hours", "0.1"])
    assert result.exit_code == 2 and "no scenario" in result.output


def test_arbitrageur_sells_a_rich_book_buys_a_cheap_one_and_unwinds_inside_the_band() -> None:
    arb = Arbitrageur(1, "BTCUSDT", entry="0.001", exit="0.0002", clip="1", max_position="2")
    arb.clip_lots, arb.max_lots = 1_000, 2_000
    index = 200_000  # 20,000.0 in 0.1 ticks: entry 200 ticks, exit 40
    assert arb.decide(index, index + 201, index + 210, 0) == (Side.SELL, 1_000, index + 200,
                                                               False)
    assert arb.decide(index, index - 210, index - 201, 0) == (Side.BUY, 1_000, index - 200,
                                                               False)
    assert arb.decide(index, index + 201, index + 210, -2_000) is None  # at its limit
    assert arb.decide(index, index + 201, index + 210, -1_500) == (Side.SELL, 500,
                                                                   index + 200, False)
    # Back inside the band: unwind, reduce-only, no worse than index ± exit.
    assert arb.decide(index, index - 10, index + 10, -1_500) == (Side.BUY, 1_000, index + 40,
                                                                 True)
    assert arb.decide(index, index - 10, index + 10, 0) is None


def test_index_window_move_and_mean_step() -> None:
    window = IndexWindow(120_000)
    for ts, price in [(0, 100_000), (60_000, 101_000), (120_000, 100_000), (180_000, 102_000)]:
        window.add(ts, price)
    assert [p for _, p in window.points] == [101_000, 100_000, 102_000]  # 0 fell out
    assert window.move_rate() == 1_000 * RATE_ONE // 101_000
    assert window.step_rate() == (1_000 * RATE_ONE // 101_000 + 2_000 * RATE_ONE // 100_000) // 2


def test_depth_maker_widens_in_volatility_and_sizes_grow_away_from_the_mid() -> None:
    maker = DepthMaker(1, "BTCUSDT", calm_step="0.001", max_widen="3")
    maker.window.add(0, 100_000)
    maker.window.add(60_000, 100_050)  # a 0.05% step: calm
    assert maker.widen_rate() == RATE_ONE
    maker.window.add(120_000, 102_051)  # a 2% step: the mean is past 1%: widened, capped
    assert maker.widen_rate() == 3 * RATE_ONE


@pytest.mark.parametrize(("style", "move", "want"), [
    ("trend", 110_000, 1), ("trend", 90_000, -1), ("revert", 110_000, -1),
    ("revert", 90_000, 1), ("trend", 100_100, 0)])
def test_signal_trader_follows_or_fades_the_move(style: str, move: int, want: int) -> None:
    trader = SignalTrader(1, "BTCUSDT", seed=1, style=style,  # type: ignore[arg-type]
                          threshold="0.003")
    trader.window.add(0, 100_000)
    trader.window.add(60_000, move)
    assert trader.signal() == want


def test_perpx_sim_runs_the_default_scenario_and_prints_its_figures_as_json() -> None:
    result = CliRunner().invoke(app, ["sim", "--scenario", "default", "--hours", "0.5",
                                      "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["scenario"] == "default" and figures["agents"] == 51
    assert figures["premium_samples"] >= 29 and figures["basis_p95"] is not None
    assert "premium index non-zero" in result.output and "invariants held" in result.output


@pytest.mark.parametrize("name", ["default", "calm", "crash"])
def test_every_bundled_scenario_parses_with_a_described_population(name: str) -> None:
    scenario = load_scenario(name)
    agents = scenario.agents("BTCUSDT")
    assert 40 <= len(agents) <= 60 and len({a.account_id for a in agents}) == len(agents)
    assert {DepthMaker, Arbitrageur, NoiseTrader} <= {type(a) for a in agents}


def test_the_scenario_table_prints_each_scenarios_figures(tmp_path: Path) -> None:
    from perpx.sim.scenariotable import main

    out = tmp_path / "table.md"
    main(["--data", str(PRICES / "btcusd_1m_2023-03-01_2023-03-07.csv"), "--hours", "0.5",
          "--scenarios", "calm", "--workers", "1", "--out", str(out)])
    text = out.read_text()
    assert "| 0.5 h of the file, from its start | calm (fund 1000000) |" in text
    assert "| ADL steps (fund / pool / book) | 0 (0 / 0 / 0) |" in text
    assert "invariants held" in text
