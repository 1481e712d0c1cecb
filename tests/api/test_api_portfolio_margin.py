"""Portfolio margin on the wire (next-mechanics §5.1, §5.6): the switch, and the PM calculation.

ccxt's `set_margin_mode('portfolio')` sends `setMarginMode=PORTFOLIO_MARGIN`; a refusal is
Bybit's 3400045 with `result.reasons[]`; `GET /v5/asset/portfolio-margin` shows the grid,
contingencies and the account's IM and MM; positions lose leverage, risk limit and liquidation
price, and the wallet's per-coin IM and MM are "".
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import ccxt

from apisupport import Live, signed
from perpx.api.keys import ApiKey


def client(live: Live, key: ApiKey) -> Any:
    return ccxt.bybit({"apiKey": key.api_key, "secret": key.secret,
                       "urls": {"api": {"public": live.url, "private": live.url}}})


def test_a_poor_account_is_told_why_it_cannot_enter(live: Live) -> None:
    key = live.new_key(demo_funds="500")
    body = json.dumps({"setMarginMode": "PORTFOLIO_MARGIN"})
    reply = signed(live, key, "POST", "/v5/account/set-margin-mode", body)
    assert reply["retCode"] == 3400045
    assert reply["result"]["reasons"] == [{
        "reasonCode": "3400000",
        "reasonMsg": "Equity needs to be equal to or greater than 1000 USDC"}]


def test_ccxt_enters_portfolio_margin_and_reads_the_calculation(live: Live) -> None:
    key = live.new_key()
    ex = client(live, key)
    ex.set_margin_mode("portfolio", "BTC/USDT:USDT")
    info = signed(live, key, "GET", "/v5/account/info")["result"]
    assert info["marginMode"] == "PORTFOLIO_MARGIN"
    ex.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
    position = signed(live, key, "GET", "/v5/position/list",
                      "category=linear&symbol=BTCUSDT")["result"]["list"][0]
    assert Decimal(position["size"]) == Decimal("0.01")
    assert (position["leverage"], position["liqPrice"], position["positionIM"],
            position["riskId"]) == ("", "", "", 0)
    wallet = signed(live, key, "GET", "/v5/account/wallet-balance",
                    "accountType=UNIFIED")["result"]["list"][0]
    assert wallet["coin"][0]["totalPositionIM"] == ""
    pm = signed(live, key, "GET", "/v5/asset/portfolio-margin", "baseCoin=BTC")
    assert pm["retCode"] == 0, pm
    result = pm["result"]
    [unit] = result["assetPnlRange"]
    assert unit["baseCoin"] == "BTC"
    scales = [r["priceScale"] for r in unit["totalPnlRanges"]["ALL"]["pnlRanges"]]
    assert scales[0] == "-0.1" and scales[-1] == "0.1" and len(scales) == 11
    assert unit["maxLossPriceMove"] == "-0.1"  # a long loses most when the price falls
    im, mm = Decimal(unit["asset"]["assetIM"]), Decimal(unit["asset"]["assetMM"])
    assert mm > 0 and im == (mm * Decimal("1.2")).quantize(Decimal("0.00000001"))
    assert Decimal(result["wallet"]["accountMM"]) == mm
    assert Decimal(wallet["totalMaintenanceMargin"]) == mm


def test_the_calculation_is_only_for_pm_accounts(live: Live) -> None:
    reply = signed(live, live.new_key(), "GET", "/v5/asset/portfolio-margin")
    assert reply["retCode"] == 10001
