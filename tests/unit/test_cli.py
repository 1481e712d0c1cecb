"""The `perpx` command: calculator figures match the published examples; bench prints JSON last."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from perpx.cli import app
from support.builders import PRICES

runner = CliRunner()


def run_json(*args: str) -> dict[str, str]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["calc", "cost", "--price", "50000", "--qty", "1", "--fee", "0.0006"],
         {"initial_margin": "5000", "fee_to_open": "30", "fee_to_close": "27",
          "order_cost": "5057"}),
        (["calc", "cost", "--side", "sell", "--price", "50000", "--qty", "1", "--fee", "0.0006"],
         {"fee_to_close": "33", "order_cost": "5063"}),
        (["calc", "position", "--entry", "40000", "--qty", "1", "--leverage", "50",
          "--extra", "3000"],
         {"fee_to_close": "21.56", "maintenance_margin": "221.56",
          "liquidation_price": "36380.30"}),
        (["calc", "pnl", "--entry", "7000", "--exit", "7500", "--qty", "0.2"],
         {"pnl": "100", "roi": "0.71076741"}),
        (["calc", "pnl", "--side", "sell", "--entry", "6000", "--exit", "5000", "--qty", "0.4"],
         {"pnl": "400", "fee_to_open": "1.32", "fee_to_close": "1.1"}),
        (["calc", "qty", "--price", "50000", "--cost", "5057", "--fee", "0.0006"],
         {"qty": "1.000"}),
        (["calc", "qty", "--price", "50000", "--value", "1234"], {"qty": "0.024"}),
    ],
    ids=["V15 order cost of a long (5,057)", "V15 order cost of a short (5,063)",
         "V1/V2 UTA liquidation price and MM (36,380.25 rounds toward the mark to 36,380.3)",
         "spec §12 ROI 71.07% on IM + fee to close", "spec §12 short P&L and fees",
         "V15 quantity from cost", "order by value rounds down to the step"],
)
def test_calculator_gives_the_published_figures(args: list[str], expected: dict[str, str]) -> None:
    figures = run_json(*args)
    assert {k: figures[k] for k in expected} == expected


def test_calculator_refuses_an_off_grid_price() -> None:
    result = runner.invoke(app, ["calc", "cost", "--price", "50000.05", "--qty", "1"])
    assert result.exit_code == 2
    assert "not a multiple of 0.10" in result.output


def test_bench_match_ends_with_one_json_line() -> None:
    result = runner.invoke(app, ["bench", "match", "--events", "3000", "--no-peers",
                                 "--memory", "500"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["events"] == 3000
    assert summary["events_per_s"] > 0 and summary["p99_ns"] >= summary["p50_ns"] > 0
    assert summary["book"]["events_per_s"] > 0
    assert summary["memory"]["orders"] == 500 and summary["memory"]["positions"] == 500


def test_bench_memory_ends_with_one_json_line() -> None:
    result = runner.invoke(app, ["bench", "memory", "--orders", "300", "--positions", "40"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["bench"] == "memory"
    assert summary["orders"] == 300 and summary["positions"] == 40


def test_sim_runs_agents_on_a_random_walk_and_reports() -> None:
    result = runner.invoke(app, ["sim", "--hours", "0.5", "--traders", "4"])
    assert result.exit_code == 0, result.output
    assert "trades" in result.output and "invariants held" in result.output


def test_sim_trades_an_inverse_perpetual_in_btc() -> None:
    result = runner.invoke(app, ["sim", "--symbol", "BTCUSD", "--hours", "0.5",
                                 "--traders", "4"])
    assert result.exit_code == 0, result.output
    assert "BTCUSD is inverse: one-way mode only" in result.output
    assert "insurance fund 1 BTC" in result.output and "contracts =" in result.output
    assert "rejections: none" in result.output  # no hedge-mode switch was tried
    assert "invariants held" in result.output


@pytest.mark.parametrize(("symbol", "named", "coin"), [
    ("BTCUSDT-25DEC26", "BTCUSDT-03MAR23", "USDT"), ("BTCUSDZ26", "BTCUSDH23", "BTC")])
def test_sim_delivers_a_dated_future_inside_a_replay(symbol: str, named: str, coin: str) -> None:
    """The operator moves the delivery into the replayed window; the report shows it."""
    result = runner.invoke(app, [
        "sim", "--symbol", symbol, "--delivery-at", "2023-03-03T08:00",
        "--data", str(PRICES / "btcusd_1m_2023-03-01_2023-03-07.csv"),
        "--start", "2023-03-03T06:00", "--hours", "3", "--traders", "4"])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())  # the console wraps long lines
    assert f"delivery {named} 2023-03-03T08:00:00Z price" in flat
    assert "(120 index samples)" in flat  # one a 15 s step in the last 30 min
    assert "open interest: none" in flat  # every position settled
    assert "BY_SETTLE" in flat and "rejections: none" in flat
    assert "insurance fund seeded / end │ " in flat and f" {coin} │" in flat
    assert "invariants held" in flat


def test_sim_refuses_a_delivery_time_for_a_perpetual() -> None:
    result = runner.invoke(app, ["sim", "--delivery-at", "2023-03-03T08:00"])
    assert result.exit_code != 0 and "never delivers" in result.output


def test_bench_risk_ends_with_one_json_line_and_leaves_nobody_breached() -> None:
    result = runner.invoke(app, ["bench", "risk", "--accounts", "200", "--symbols", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["positions"] == 400
    assert summary["liquidated"] > 0 and summary["breached_left_after"] == 0
    assert summary["detect_ms"] >= 0 and summary["us_per_liquidation"] > 0


def test_calc_formula_option_selects_the_older_liquidation_price() -> None:
    """#13 B4: --formula legacy gives V3's 19,700; uta (the default) its own price."""
    base = ["calc", "position", "--entry", "20000", "--qty", "1", "--leverage", "50"]
    assert run_json(*base, "--formula", "legacy")["liquidation_price"] == "19700.00"
    assert run_json(*base)["liq_price_formula"] == "uta"
    assert runner.invoke(app, [*base, "--formula", "oldest"]).exit_code != 0


@pytest.mark.parametrize(
    ("symbol", "margin", "qty", "value"),
    [("BTCUSDT", "0.1 BTC", "10.000 BTC", "600000 USDT"),
     ("ETHUSDT", "1 ETH", "100.00 ETH", "300000 USDT")],
    ids=["BTCUSDT: 0.1 BTC of margin at 100x is 10 BTC, 600,000 USDT at 60,000",
         "ETHUSDT: 1 ETH of margin at 100x is 100 ETH, 300,000 USDT at 3,000"],
)
def test_calc_instrument_shows_the_impact_margin_notional(
        symbol: str, margin: str, qty: str, value: str) -> None:
    """#13 B7: the impact margin notional is readable, in the base coin as Bybit publishes
    the impact margin, and in USDT at a price."""
    price = "60000" if symbol == "BTCUSDT" else "3000"
    figures = run_json("calc", "instrument", "--symbol", symbol, "--price", price)
    assert (figures["impact_margin"], figures["impact_margin_notional_qty"],
            figures["impact_margin_notional"]) == (margin, qty, value)
    assert figures["contract_type"] == "LinearPerpetual"
