"""The `/v5/asset/portfolio-margin` result shape (next-mechanics §5.6) against Bybit's sample.

The fixture is the API documentation's response example (tests/data/vectors, source noted in
the file). perpx's result must carry every key of it with the same JSON types; lists are
compared through their first item (perpx has no options, so its option lists are empty).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from perpx.api.pm_wire import PmWallet, portfolio_margin_result, price_scale_text, usd_text
from perpx.core.account.portfolio import PmLeg, PmParams, portfolio_margin
from perpx.instruments import bundled_instruments

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "vectors" / "portfolio_margin_sample.json"
SPECS = {spec.symbol: spec for spec in bundled_instruments()}
USD = 10**8


def _shape_problems(mine: Any, theirs: Any, path: str = "result") -> list[str]:
    """Return where `mine` lacks a key of `theirs` or holds another JSON type."""
    if type(mine) is not type(theirs):
        return [f"{path}: {type(mine).__name__} instead of {type(theirs).__name__}"]
    problems: list[str] = []
    if isinstance(theirs, dict):
        for key, value in theirs.items():
            if key not in mine:
                problems.append(f"{path}.{key}: missing")
            else:
                problems += _shape_problems(mine[key], value, f"{path}.{key}")
        problems += [f"{path}.{key}: not in Bybit's sample" for key in mine if key not in theirs]
    elif isinstance(theirs, list) and theirs and mine:
        problems += _shape_problems(mine[0], theirs[0], f"{path}[0]")
    return problems


def _result() -> dict[str, Any]:
    legs = [PmLeg(SPECS["BTCUSDT"], 1_000, 600_000, USD, mark_ticks=600_100,
                  buy_order_lots=500),
            PmLeg(SPECS["BTCUSDT-25DEC26"], -1_000, 600_000, USD, mark_ticks=612_000),
            PmLeg(SPECS["ETHUSDT"], 0, 300_000, USD, sell_order_lots=100)]
    account = portfolio_margin(legs, PmParams())
    wallet = PmWallet(equity=52_197 * USD, cash_balance=45_391 * USD,
                      margin_balance=52_145 * USD, available_balance=50_893 * USD,
                      account_im=account.im, account_mm=account.mm,
                      account_im_rate=249, account_mm_rate=204)
    return portfolio_margin_result(account, wallet)


def test_result_has_bybits_shape() -> None:
    sample = json.loads(SAMPLE.read_text(encoding="utf-8"))["result"]
    result = json.loads(json.dumps(_result()))  # as served
    assert _shape_problems(result, sample) == []
    # The option list perpx leaves empty is there, as a list.
    assert result["assetPnlRange"][0]["optionExpiryDatePnlRanges"] == []


def test_result_figures() -> None:
    result = _result()
    assert result["wallet"]["accountIMRate"] == "0.0249"
    assert result["wallet"]["accountMMRate"] == "0.0204"
    btc, eth = result["assetPnlRange"]
    assert (btc["baseCoin"], eth["baseCoin"]) == ("BTC", "ETH")
    assert [row["priceScale"] for row in btc["totalPnlRanges"]["ALL"]["pnlRanges"]] == [
        "-0.1", "-0.08", "-0.06", "-0.04", "-0.02", "0.0", "0.02", "0.04", "0.06", "0.08",
        "0.1"]  # the sample's grid
    assert btc["totalPnlRanges"]["ALL"]["pnlRanges"][0]["pnls"] == ["0.00000000"]
    assert btc["totalPnlRanges"]["OPTION"]["pnlRanges"][0]["pnls"] == ["0.00000000"]
    perp, future = btc["perpPositionPnlRanges"]
    assert perp["symbolName"] == "BTCUSDT" and perp["position"] == "1.000"
    assert perp["pnlRanges"][0]["pnls"] == ["-6000.00000000"]
    assert perp["markPrice"] == "60010.00000000" and perp["orderSize"] == "0.500"
    assert future["position"] == "-1.000" and future["contractType"] == 2
    assert btc["contingency"]["futureContingency"] == "720.00000000"
    assert btc["contingency"]["contingencyComponents"] == "720.00000000"
    assert btc["contingency"]["futureDeltaContingency"] == "0.00000000"
    # IM takes the buy order: long 1.5 / short 1 -> MaxLoss 3,000 + 0.006 x 150,000 = 3,900.
    assert btc["asset"] == {"coin": "BTC", "assetIM": "4680.00000000",
                           "assetMM": "720.00000000"}
    assert btc["maxLossPriceMove"] == "-0.1"  # all zero: the first point
    # ETH: orders only, no position -> listed with its order size, MM 0.
    assert eth["perpPositionPnlRanges"][0]["orderSize"] == "1.00"
    assert eth["asset"]["assetMM"] == "0.00000000"
    filtered = portfolio_margin_result(
        portfolio_margin([PmLeg(SPECS["ETHUSDT"], 100, 300_000, USD)], PmParams()),
        PmWallet(0, 0, 0, 0, 0, 0, 0, 0), base_coin="BTC")
    assert filtered["assetPnlRange"] == []


def test_texts() -> None:
    assert usd_text(-97_214_482_880) == "-972.14482880"
    assert usd_text(0) == "0.00000000"
    assert price_scale_text(-10_000_000) == "-0.1"
    assert price_scale_text(0) == "0.0"
    assert price_scale_text(2_000_000) == "0.02"
