"""`perpx calc pm` (next-mechanics §5): the worked examples P3 and P4 through the CLI."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from perpx.cli import app

runner = CliRunner()


def _pm(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["calc", "pm", *args, "--json"])
    assert result.exit_code == 0, result.output
    figures: dict[str, Any] = json.loads(result.output)
    return figures


def test_p3_unhedged_long() -> None:
    """P3: MaxLoss 6,000 at -10%, contingency 360, MM 6,360, IM 7,632."""
    figures = _pm("--position", "BTCUSDT:1", "--index", "BTC=60000")
    (unit,) = figures["units"]
    assert unit["base_coin"] == "BTC" and unit["positions"] == {"BTCUSDT": "1.000"}
    assert [row["price_move"] for row in unit["pnl_grid"]] == [
        "-0.1", "-0.08", "-0.06", "-0.04", "-0.02", "0", "0.02", "0.04", "0.06", "0.08", "0.1"]
    assert unit["pnl_grid"][0] == {"price_move": "-0.1", "pnl": "-6000", "BTCUSDT": "-6000"}
    assert (unit["max_loss"], unit["max_loss_price_move"]) == ("6000", "-0.1")
    assert unit["future_contingency"] == "360" and unit["contingency"] == "360"
    assert (unit["mm"], unit["im"]) == ("6360", "7632")
    assert (figures["mm"], figures["im"]) == ("6360", "7632")
    assert (figures["risk_factor"], figures["im_factor"]) == ("0.006", "1.2")


def test_p4_hedge_index_and_mark_base() -> None:
    """P4: perp (mark 60,010) against a future (mark 61,200): MM 720 / IM 864; mark base 119."""
    book = ("--position", "BTCUSDT:1", "--position", "BTCUSDT-25DEC26:-1",
            "--index", "BTC=60000", "--mark", "BTCUSDT=60010",
            "--mark", "BTCUSDT-25DEC26=61200")
    (unit,) = _pm(*book)["units"]
    assert {row["pnl"] for row in unit["pnl_grid"]} == {"0"}
    assert (unit["max_loss"], unit["mm"], unit["im"]) == ("0", "720", "864")
    (marked,) = _pm(*book, "--shock-base", "mark")["units"]
    assert (marked["max_loss"], marked["max_loss_price_move"]) == ("119", "0.1")
    assert marked["mm"] == "839"


def test_orders_enter_the_im_only() -> None:
    (unit,) = _pm("--position", "BTCUSDT:1", "--index", "BTC=60000",
                  "--order", "BTCUSDT:buy:0.5", "--order", "BTCUSDT:sell:0.5")["units"]
    assert (unit["mm"], unit["mm_with_buys"], unit["mm_with_sells"]) == ("6360", "9540", "3180")
    assert unit["im"] == "11448"


def test_units_inverse_and_usdc() -> None:
    figures = _pm("--position", "BTCUSD:60000", "--position", "ETHPERP:-1",
                  "--index", "BTC=60000", "--index", "ETH=3000", "--usd", "USDC=0.9999")
    btc, eth = figures["units"]
    assert btc["pnl_grid"][0]["pnl"] == "-6000"  # P5: exactly C x s USD
    assert eth["max_loss"] == "299.97" and eth["max_loss_price_move"] == "0.1"


def test_table_output_and_refusals() -> None:
    shown = runner.invoke(app, ["calc", "pm", "--position", "BTCUSDT:1", "--index", "BTC=60000"])
    assert shown.exit_code == 0 and "MaxLoss" not in shown.output
    assert "max_loss" in shown.output and "7632" in shown.output
    for bad in (["--position", "BTCUSDT:1"],  # no index
                ["--position", "NOPE:1", "--index", "BTC=60000"],
                ["--position", "BTCUSDT:0.0001", "--index", "BTC=60000"],  # off the lot
                ["--position", "BTCUSDT:1", "--index", "BTC=60000", "--order", "BTCUSDT:1"],
                ["--position", "BTCUSDT:1", "--index", "BTC=60000", "--shock-base", "x"]):
        result = runner.invoke(app, ["calc", "pm", *bad])
        assert result.exit_code != 0, bad


def test_what_if_a_hedge_fills() -> None:
    """P3's long, then a short future fills: P4's hedge, MM 6,360 → 720 and IM 7,632 → 864."""
    figures = _pm("--position", "BTCUSDT:1", "--index", "BTC=60000",
                  "--fill", "BTCUSDT-25DEC26:sell:1")
    assert figures["what_if"] == {"before": {"mm": "6360", "im": "7632"},
                                  "after": {"mm": "720", "im": "864"},
                                  "change": {"mm": "-5640", "im": "-6768"}}
    assert figures["mm"] == "6360"  # the book as held; the fill is only a what-if
    table = runner.invoke(app, ["calc", "pm", "--position", "BTCUSDT:1", "--index",
                                "BTC=60000", "--fill", "BTCUSDT:sell:0.5"])
    assert table.exit_code == 0 and "mm after" in table.output and "3180" in table.output
