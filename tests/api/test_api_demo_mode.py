"""Issue #12 item 8 (demo money only in demo mode) and #13 C1, against a live server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import ccxt
import pytest

from apisupport import Live, signed
from perpx.api.keys import ApiKey
from perpx.core.enums import PositionMode

DEMO = "/v5/account/demo-apply-money"
SWITCH = "/v5/position/switch-mode"


def apply_money(live: Live, key: ApiKey, amounts: list[str], adjust: int = 0,
                coin: str = "USDT") -> Any:
    body = {"adjustType": adjust,
            "utaDemoApplyMoney": [{"coin": coin, "amountStr": a} for a in amounts]}
    return signed(live, key, "POST", DEMO, json.dumps(body))


def usdt(live: Live, key: ApiKey) -> int:
    account = live.service.engine.clearing.account(key.account_id)
    return account.balances.get("USDT", 0) if account is not None else 0


def funded(live: Live) -> ApiKey:
    key = live.new_key()
    assert signed(live, key, "GET", "/v5/account/wallet-balance",
                  "accountType=UNIFIED")["retCode"] == 0  # the first request credits it
    return key


def test_the_cap_holds_for_the_whole_request(live: Live) -> None:
    """Item 8: one request of 1,000 items at the cap added 100,000,000 USDT on main."""
    key = funded(live)
    before = usdt(live, key)
    reply = apply_money(live, key, ["100000"] * 1000)
    assert reply["retCode"] == 10001 and "100000" in reply["retMsg"]
    assert usdt(live, key) == before
    assert apply_money(live, key, ["60000", "40001"])["retCode"] == 10001
    assert usdt(live, key) == before
    assert apply_money(live, key, ["60000", "40000"])["retCode"] == 0
    assert usdt(live, key) == before + 100_000 * 10**8


def test_a_take_applies_entirely_or_not_at_all(live: Live) -> None:
    """Item 8: on main the first take of a request applied and the second was refused."""
    key = funded(live)
    assert apply_money(live, key, ["50000"], adjust=1)["retCode"] == 0
    before = usdt(live, key)
    assert before == 50_000 * 10**8
    reply = apply_money(live, key, ["30000", "30000"], adjust=1)
    assert reply["retCode"] == 110004
    assert usdt(live, key) == before
    reply = apply_money(live, key, ["10", "0.5", "abc"], adjust=1)
    assert reply["retCode"] != 0 and usdt(live, key) == before
    assert apply_money(live, key, ["30000", "20000"], adjust=1)["retCode"] == 0
    assert usdt(live, key) == 0


def test_a_bad_item_anywhere_changes_nothing(live: Live) -> None:
    """Item 8: every item is checked before any is applied."""
    key = funded(live)
    before = usdt(live, key)
    body = {"adjustType": 0, "utaDemoApplyMoney": [
        {"coin": "USDT", "amountStr": "10"}, {"coin": "XRP", "amountStr": "1"}]}
    assert signed(live, key, "POST", DEMO, json.dumps(body))["retCode"] == 10001
    assert usdt(live, key) == before


@pytest.fixture
def production(live: Live) -> Iterator[Live]:
    """The shared server switched to production mode for one test."""
    live.service.demo = False
    try:
        yield live
    finally:
        live.service.demo = True


def test_production_refuses_demo_money_and_credits_no_demo_funds(production: Live) -> None:
    """Item 8: in production demo-apply-money answers 10005 and keys get no demo funds."""
    live = production
    key = live.new_key()  # demo_funds 100000 in the key table, ignored in production
    reply = apply_money(live, key, ["100"])
    assert reply["retCode"] == 10005 and "demo trading only" in reply["retMsg"]
    assert signed(live, key, "GET", "/v5/account/wallet-balance",
                  "accountType=UNIFIED")["retCode"] == 0
    assert live.service.engine.clearing.account(key.account_id) is None


def modes(live: Live, key: ApiKey) -> dict[str, PositionMode]:
    account = live.service.engine.clearing.account(key.account_id)
    assert account is not None
    # The USDT contracts: a switch by coin=USDT leaves the inverse ones (one-way only) alone.
    return {s: account.position_mode(s) for s, spec in live.service.specs.items()
            if spec.settle_coin == "USDT"}


def test_switch_mode_by_coin_checks_every_symbol_first(live: Live) -> None:
    """Item 8: on main a coin-wide switch switched BTCUSDT and ETHUSDT, then answered an
    error for SOLUSDT (an open order there): state changed under an error."""
    key = funded(live)
    order = {"category": "linear", "symbol": "SOLUSDT", "side": "Buy", "orderType": "Limit",
             "qty": "1", "price": "10"}
    assert signed(live, key, "POST", "/v5/order/create", json.dumps(order))["retCode"] == 0
    body = json.dumps({"category": "linear", "coin": "USDT", "mode": 3})
    reply = signed(live, key, "POST", SWITCH, body)
    assert reply["retCode"] == 110025 and "SOLUSDT" in reply["retMsg"]
    assert set(modes(live, key).values()) == {PositionMode.ONE_WAY}
    cancel = {"category": "linear", "symbol": "SOLUSDT"}
    assert signed(live, key, "POST", "/v5/order/cancel-all",
                  json.dumps(cancel))["retCode"] == 0
    assert signed(live, key, "POST", SWITCH, body)["retCode"] == 0
    assert set(modes(live, key).values()) == {PositionMode.HEDGE}


def test_switch_mode_by_coin_to_the_mode_held_answers_0(live: Live) -> None:
    """#13 C1: freqtrade calls switch-mode coin=USDT mode=0 at every start; on a one-way
    account main answered 110025, ccxt raised NoChange and freqtrade gave up."""
    key = live.new_key()
    ex = ccxt.bybit({"apiKey": key.api_key, "secret": key.secret,
                     "urls": {"api": {"public": live.url, "private": live.url}}})
    ex.load_markets()
    ex.set_position_mode(False)  # coin-wide, every symbol one-way already: no change, no error
    assert set(modes(live, key).values()) == {PositionMode.ONE_WAY}
    ex.set_position_mode(True, "BTC/USDT:USDT")
    with pytest.raises(ccxt.NoChange):  # by symbol, Bybit's 110025 stays
        ex.set_position_mode(True, "BTC/USDT:USDT")
    ex.set_position_mode(False)  # mixed: only BTCUSDT changes
    assert set(modes(live, key).values()) == {PositionMode.ONE_WAY}
    ex.set_position_mode(False)
    reply = signed(live, key, "POST", SWITCH,
                   json.dumps({"category": "linear", "coin": "XYZ", "mode": 0}))
    assert reply["retCode"] == 10001
