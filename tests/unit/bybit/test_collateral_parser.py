"""One parser for the collateral requests: REST and `perpx.Exchange` answer a body alike.

Each case is one request of the collateral surface (set-collateral-switch, repay,
no-convert-repay, quick-repayment) sent to two identical fresh worlds: the REST app (signed
HTTP through the ASGI app) and `perpx.Exchange` (`set_collateral_switch`, `repay`). Both must
answer the retCode the case expects with the same retMsg and end in the same state; a
refusal leaves it as it was. The account holds 1 BTC and no USDT and is long BTCUSDT: the
taker fee is a USDT liability.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from perpx import Exchange
from perpx.api.app import create_app
from perpx.api.keys import KeyStore
from perpx.bybit import translate
from perpx.convert import to_atoms, to_ticks
from perpx.core.commands import Command, Deposit, IndexPrice, MarkPrice
from perpx.core.instruments import InstrumentSpec
from perpx.instruments import load_instruments
from perpx.service import ExchangeService
from perpx.store.journal import MemoryJournal
from unit.bybit.test_one_parser import NOW, Answer, _post, _state

SPECS = [s for s in load_instruments() if s.symbol in ("BTCUSDT", "ETHUSDT")]
MAKER = 900


def _setup(account: int, specs: dict[str, InstrumentSpec]) -> list[Command]:
    btc, eth = specs["BTCUSDT"], specs["ETHUSDT"]

    def order(who: int, body: dict[str, Any]) -> Command:
        return translate.command("order.create", {"category": "linear", **body}, who, specs)

    return [Deposit(0, 0, account, "BTC", to_atoms("1")),
            Deposit(0, 0, MAKER, "USDT", to_atoms("100000")),
            IndexPrice(0, 0, "BTCUSDT", to_ticks(btc, "60000")),
            MarkPrice(0, 0, "BTCUSDT", to_ticks(btc, "60000")),
            IndexPrice(0, 0, "ETHUSDT", to_ticks(eth, "3000")),
            order(MAKER, {"symbol": "BTCUSDT", "side": "Sell", "orderType": "Limit",
                          "qty": "0.01", "price": "60000"}),
            order(account, {"symbol": "BTCUSDT", "side": "Buy", "orderType": "Market",
                            "qty": "0.01"})]


Call = Callable[[Exchange, int], Any]
SWITCH = "/v5/account/set-collateral-switch"
REPAY = "/v5/account/repay"
# (name, REST path, body, the same through Exchange, retCode)
CASES: list[tuple[str, str, dict[str, Any], Call, int]] = [
    ("switch ETH off", SWITCH, {"coin": "ETH", "collateralSwitch": "OFF"},
     lambda ex, a: ex.set_collateral_switch(a, "ETH", False), 0),
    ("switch USDT off", SWITCH, {"coin": "USDT", "collateralSwitch": "OFF"},
     lambda ex, a: ex.set_collateral_switch(a, "USDT", False), 10001),
    ("switch BTC off (the margin)", SWITCH, {"coin": "BTC", "collateralSwitch": "OFF"},
     lambda ex, a: ex.set_collateral_switch(a, "BTC", False), 110007),
    ("switch an unknown coin", SWITCH, {"coin": "DOGE", "collateralSwitch": "ON"},
     lambda ex, a: ex.set_collateral_switch(a, "DOGE", True), 10001),
    ("switch a lowercase coin", SWITCH, {"coin": "eth", "collateralSwitch": "ON"},
     lambda ex, a: ex.set_collateral_switch(a, "eth", True), 10001),
    ("repay all", REPAY, {}, lambda ex, a: ex.repay(a), 0),
    ("repay part", REPAY, {"coin": "USDT", "amount": "0.1"},
     lambda ex, a: ex.repay(a, "USDT", "0.1"), 0),
    ("repay an amount without a coin", REPAY, {"amount": "1"},
     lambda ex, a: ex.repay(a, None, "1"), 10001),
    ("repay a zero amount", REPAY, {"coin": "USDT", "amount": "0"},
     lambda ex, a: ex.repay(a, "USDT", "0"), 10001),
    ("repay an amount off the atom", REPAY, {"coin": "USDT", "amount": "0.000000001"},
     lambda ex, a: ex.repay(a, "USDT", "0.000000001"), 10001),
    ("repay a coin not owed", REPAY, {"coin": "ETH"}, lambda ex, a: ex.repay(a, "ETH"), 10001),
    ("no-convert-repay", "/v5/account/no-convert-repay", {"coin": "USDT"},
     lambda ex, a: ex.repay(a, "USDT", convert=False), 0),
    ("quick-repayment", "/v5/account/quick-repayment", {}, lambda ex, a: ex.repay(a), 0),
]


def _rest_world(path: str, body: dict[str, Any]) -> tuple[Answer, int]:
    keys = KeyStore(None)
    key = keys.create(rate_limit=10_000)
    service = ExchangeService(SPECS, MemoryJournal(), clock=lambda: NOW, maker=False)

    async def go() -> Answer:
        for command in _setup(key.account_id, service.specs):
            await service.submit(command)
        before = _state(service.engine)
        reply = await _post(create_app(service, keys), path, json.dumps(body).encode(), key)
        await service.settled()
        return Answer(reply["retCode"], reply["retMsg"], before, _state(service.engine))

    try:
        return asyncio.run(go()), key.account_id
    finally:
        keys.close()


def _exchange_world(call: Call, account: int) -> Answer:
    ex = Exchange(SPECS, start_ms=NOW)
    for command in _setup(account, ex.engine.instruments):
        assert ex.submit(command).ret_code == 0
    before = _state(ex.engine)
    result = call(ex, account)
    return Answer(result.ret_code, result.ret_msg, before, _state(ex.engine))


@pytest.mark.parametrize(("name", "path", "body", "call", "code"), CASES,
                         ids=[case[0] for case in CASES])
def test_rest_and_exchange_answer_a_collateral_request_alike(
        name: str, path: str, body: dict[str, Any], call: Call, code: int) -> None:
    rest, account = _rest_world(path, body)
    ex = _exchange_world(call, account)  # the same account id: the states compare
    assert (rest.code, rest.msg) == (ex.code, ex.msg)
    assert rest.code == code, rest.msg
    for answer in (rest, ex):
        if code:
            assert answer.after == answer.before, f"{name}: a refusal changed state"
        elif name != "no-convert-repay":  # nothing to repay it with: nothing moves
            assert answer.after != answer.before, f"{name}: nothing happened"
    assert rest.after == ex.after
