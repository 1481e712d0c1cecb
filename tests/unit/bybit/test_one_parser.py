"""One order parser: the same body gets the same answer over REST, `/v5/trade` and `Exchange`.

Each case is one order-ish request (create, amend, cancel, cancel-all, trading-stop) sent to
three identical fresh worlds: the REST app (signed HTTP through the ASGI app), a `/v5/trade`
session (`handle_trade_op`) and `perpx.Exchange` (its snake-case keywords). Every entry that
can express the request must answer the same retCode and retMsg, the one the case expects
(Bybit's), and end in the same state; a refusal must leave the state as it was.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from perpx import Exchange
from perpx.api.app import create_app
from perpx.api.keys import ApiKey, KeyStore
from perpx.api.permissions import Access
from perpx.api.ws.connection import Connection
from perpx.api.ws.trade import handle_trade_op
from perpx.bybit import translate
from perpx.core.commands import Command, Deposit, IndexPrice, MarkPrice
from perpx.core.instruments import InstrumentSpec
from perpx.instruments import load_instruments
from perpx.service import ExchangeService
from perpx.store.journal import MemoryJournal

NOW = 1_700_000_000_000
SPECS = [s for s in load_instruments() if s.symbol in ("BTCUSDT", "ETHUSDT")]
MAKER = 900  # the other side of the setup's trade
PATHS = {"create": "/v5/order/create", "amend": "/v5/order/amend",
         "cancel": "/v5/order/cancel", "cancel-all": "/v5/order/cancel-all",
         "trading-stop": "/v5/position/trading-stop"}
WS_OPS = {"create": "order.create", "amend": "order.amend", "cancel": "order.cancel"}


def _setup(account: int, specs: dict[str, InstrumentSpec]) -> list[Command]:
    """Funds, prices, a long 0.005 BTCUSDT position and a resting buy `rest-1` of `account`."""
    btc = specs["BTCUSDT"]
    from perpx.convert import to_atoms, to_ticks

    def order(who: int, body: dict[str, Any]) -> Command:
        return translate.command("order.create", {"category": "linear", **body}, who, specs)

    return [Deposit(0, 0, account, "USDT", to_atoms("100000")),
            Deposit(0, 0, MAKER, "USDT", to_atoms("100000")),
            IndexPrice(0, 0, "BTCUSDT", to_ticks(btc, "60000")),
            MarkPrice(0, 0, "BTCUSDT", to_ticks(btc, "60000")),
            order(MAKER, {"symbol": "BTCUSDT", "side": "Sell", "orderType": "Limit",
                          "qty": "0.01", "price": "60000"}),
            order(account, {"symbol": "BTCUSDT", "side": "Buy", "orderType": "Market",
                            "qty": "0.005"}),
            order(account, {"symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit",
                            "qty": "0.01", "price": "59000", "orderLinkId": "rest-1"})]


def _state(engine: Any) -> dict[str, Any]:
    """The engine's state without its sequence counters (a core refusal takes a seq)."""
    snapshot: dict[str, Any] = json.loads(json.dumps(engine.to_snapshot(), sort_keys=True))
    snapshot.pop("last_seq")
    snapshot.pop("last_ts_ms")
    return snapshot


@dataclass
class Answer:
    """What one entry answered and whether its state moved."""

    code: int
    msg: str
    before: dict[str, Any] = field(repr=False)
    after: dict[str, Any] = field(repr=False)


def _signed(key: ApiKey, body: bytes) -> list[tuple[bytes, bytes]]:
    sign = hmac.new(key.secret.encode(), f"{NOW}{key.api_key}5000".encode() + body,
                    hashlib.sha256).hexdigest()
    return [(b"content-type", b"application/json"), (b"x-bapi-api-key", key.api_key.encode()),
            (b"x-bapi-timestamp", str(NOW).encode()), (b"x-bapi-recv-window", b"5000"),
            (b"x-bapi-sign", sign.encode())]


async def _post(app: Any, path: str, body: bytes, key: ApiKey) -> dict[str, Any]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": _signed(key, body),
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    sent: list[dict[str, Any]] = []
    chunks = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    reply: dict[str, Any] = json.loads(sent[-1]["body"])
    return reply


class _Gate:
    """The session's key, already authenticated (the gate itself is tested elsewhere)."""

    def __init__(self, key: ApiKey) -> None:
        self.key = key

    def check(self, conn: Connection, access: Access) -> ApiKey:
        return self.key


class _Session:
    def __init__(self, service: ExchangeService, key: ApiKey) -> None:
        self.conn = Connection("trade")
        self.gate = _Gate(key)
        self.submit = service.submit
        self._service = service
        self.replies: list[dict[str, Any]] = []

    @property
    def specs(self) -> Any:
        return self._service.specs

    def reply(self, message: dict[str, Any]) -> None:
        self.replies.append(message)


def _service_world(kind: str, body: dict[str, Any]) -> Answer:
    """Answer `body` over REST or `/v5/trade` in a fresh service."""
    keys = KeyStore(None)
    key = keys.create(rate_limit=10_000)
    service = ExchangeService(SPECS, MemoryJournal(), clock=lambda: NOW, maker=False)

    async def go() -> Answer:
        for command in _setup(key.account_id, service.specs):
            await service.submit(command)
        before = _state(service.engine)
        if kind == "rest":
            reply = await _post(create_app(service, keys), PATHS[body["_op"]],
                                json.dumps(_wire(body)).encode(), key)
        else:
            session = _Session(service, key)
            await handle_trade_op(session, {"op": WS_OPS[body["_op"]], "reqId": "1",
                                            "args": [_wire(body)]})
            [reply] = session.replies
        await service.settled()
        return Answer(reply["retCode"], reply["retMsg"], before, _state(service.engine))

    try:
        return asyncio.run(go())
    finally:
        keys.close()


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


EXCHANGE_CALLS: dict[str, Callable[..., Any]] = {
    "create": Exchange.place_order, "amend": Exchange.amend, "cancel": Exchange.cancel,
    "cancel-all": Exchange.cancel_all, "trading-stop": Exchange.trading_stop}


def _exchange_world(body: dict[str, Any]) -> Answer:
    """Answer `body` through `perpx.Exchange`'s keywords in a fresh exchange."""
    ex = Exchange(SPECS, start_ms=NOW)
    account = 1
    for command in _setup(account, ex.engine.instruments):
        assert ex.submit(command).ret_code == 0
    before = _state(ex.engine)
    kwargs = {_snake(k): v for k, v in _wire(body).items() if k != "category"}
    result = EXCHANGE_CALLS[body["_op"]](ex, account, **kwargs)
    return Answer(result.ret_code, result.ret_msg, before, _state(ex.engine))


def _wire(body: dict[str, Any]) -> dict[str, Any]:
    return {"category": "linear", **{k: v for k, v in body.items() if not k.startswith("_")}}


BUY = {"_op": "create", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit",
       "qty": "0.01", "price": "59500"}
P10001 = "params error"

# (name, body, retCode, retMsg); `_no_exchange`: Exchange's signature cannot say it (a
# missing required keyword, another category).
CASES: list[tuple[str, dict[str, Any], int, str]] = [
    # order/create
    ("create ok", BUY, 0, "OK"),
    ("create market ok", {**BUY, "orderType": "Market", "price": None}, 0, "OK"),
    ("create conditional ok", {**BUY, "triggerPrice": "61000", "triggerDirection": 1}, 0, "OK"),
    ("create tpsl ok", {**BUY, "takeProfit": "65000", "stopLoss": "55000",
                        "tpslMode": "Partial", "tpOrderType": "Limit",
                        "tpLimitPrice": "64900"}, 0, "OK"),
    ("unknown symbol", {**BUY, "symbol": "NOPEUSDT"}, 10001, f"{P10001}: symbol invalid"),
    ("bad side", {**BUY, "side": "Long"}, 10001, f"{P10001}: side invalid"),
    ("bad orderType", {**BUY, "orderType": "Stop"}, 10001, f"{P10001}: orderType invalid"),
    ("bad qty", {**BUY, "qty": "abc"}, 10001, "Qty invalid"),
    ("qty off step", {**BUY, "qty": "0.0001"}, 10001, "Qty invalid"),
    ("limit without price", {**BUY, "price": None}, 10001, f"{P10001}: price is required"),
    ("price off tick", {**BUY, "price": "59500.01"}, 10001, "price invalid"),
    ("price out of range", {**BUY, "price": "2000000"}, 110003,
     "Order price is out of permissible range"),
    ("bad timeInForce", {**BUY, "timeInForce": "GTD"}, 10001, f"{P10001}: timeInForce invalid"),
    ("bad positionIdx", {**BUY, "positionIdx": 5}, 10001, f"{P10001}: positionIdx out of range"),
    ("hedge idx in one-way", {**BUY, "positionIdx": 1}, 10001,
     "position idx not match position mode"),
    ("bad reduceOnly", {**BUY, "reduceOnly": "maybe"}, 10001, f"{P10001}: reduceOnly invalid"),
    ("bad closeOnTrigger", {**BUY, "closeOnTrigger": "x"}, 10001,
     f"{P10001}: closeOnTrigger invalid"),
    ("bad orderLinkId", {**BUY, "orderLinkId": "bad link!"}, 10001,
     f"{P10001}: orderLinkId invalid"),
    ("duplicate orderLinkId", {**BUY, "orderLinkId": "rest-1"}, 110072,
     "OrderLinkedID is duplicate"),
    ("bad smpType", {**BUY, "smpType": "CancelAll"}, 10001, f"{P10001}: smpType invalid"),
    ("trigger without direction", {**BUY, "triggerPrice": "61000"}, 10001,
     f"{P10001}: triggerDirection is required"),
    ("bad triggerDirection", {**BUY, "triggerPrice": "61000", "triggerDirection": 3}, 10001,
     f"{P10001}: triggerDirection invalid"),
    ("bad triggerBy", {**BUY, "triggerPrice": "61000", "triggerDirection": 1,
                       "triggerBy": "Last"}, 10001, f"{P10001}: triggerBy invalid"),
    ("trigger off tick", {**BUY, "triggerPrice": "61000.01", "triggerDirection": 1}, 10001,
     "price invalid: triggerPrice"),
    ("trigger on the wrong side", {**BUY, "triggerPrice": "59000", "triggerDirection": 1},
     110092, "expect Rising, but trigger_price <= current price"),
    ("bad takeProfit", {**BUY, "takeProfit": "x"}, 10001, "price invalid: takeProfit"),
    ("bad tpTriggerBy", {**BUY, "takeProfit": "65000", "tpTriggerBy": "Mark"}, 10001,
     f"{P10001}: tpTriggerBy invalid"),
    ("bad tpslMode", {**BUY, "stopLoss": "55000", "tpslMode": "Half"}, 10001,
     f"{P10001}: tpslMode invalid"),
    ("bad slOrderType", {**BUY, "stopLoss": "55000", "slOrderType": "Stop"}, 10001,
     f"{P10001}: slOrderType invalid"),
    ("tp on the wrong side", {**BUY, "takeProfit": "50000"}, 10001,
     "params error: TP/SL price invalid"),
    # order/amend
    ("amend ok", {"_op": "amend", "symbol": "BTCUSDT", "orderLinkId": "rest-1",
                  "price": "59100"}, 0, "OK"),
    ("amend names no order", {"_op": "amend", "symbol": "BTCUSDT", "price": "59100"}, 10001,
     f"{P10001}: orderId or orderLinkId is required"),
    ("amend unknown order", {"_op": "amend", "symbol": "BTCUSDT", "orderId": "123456",
                             "price": "59100"}, 110001, "Order does not exist"),
    ("amend malformed orderId", {"_op": "amend", "symbol": "BTCUSDT", "orderId": "x-1",
                                 "price": "59100"}, 110001, "Order does not exist"),
    ("amend price off tick", {"_op": "amend", "symbol": "BTCUSDT", "orderLinkId": "rest-1",
                              "price": "59100.01"}, 10001, "price invalid"),
    ("amend bad qty", {"_op": "amend", "symbol": "BTCUSDT", "orderLinkId": "rest-1",
                       "qty": "abc"}, 10001, "Qty invalid"),
    ("amend unknown symbol", {"_op": "amend", "symbol": "NOPE", "orderLinkId": "rest-1",
                              "price": "59100"}, 10001, f"{P10001}: symbol invalid"),
    ("amend bad triggerBy", {"_op": "amend", "symbol": "BTCUSDT", "orderLinkId": "rest-1",
                             "triggerBy": "Last"}, 10001, f"{P10001}: triggerBy invalid"),
    # order/cancel
    ("cancel ok", {"_op": "cancel", "symbol": "BTCUSDT", "orderLinkId": "rest-1"}, 0, "OK"),
    ("cancel names no order", {"_op": "cancel", "symbol": "BTCUSDT"}, 10001,
     f"{P10001}: orderId or orderLinkId is required"),
    ("cancel unknown order", {"_op": "cancel", "symbol": "BTCUSDT", "orderLinkId": "nope"},
     110001, "Order does not exist"),
    ("cancel unknown symbol", {"_op": "cancel", "symbol": "NOPE", "orderLinkId": "rest-1"},
     10001, f"{P10001}: symbol invalid"),
    # order/cancel-all
    ("cancel-all ok", {"_op": "cancel-all", "symbol": "BTCUSDT"}, 0, "OK"),
    ("cancel-all plain orders", {"_op": "cancel-all", "symbol": "BTCUSDT",
                                 "orderFilter": "Order"}, 0, "OK"),
    ("cancel-all bad orderFilter", {"_op": "cancel-all", "symbol": "BTCUSDT",
                                    "orderFilter": "Stops"}, 10001,
     f"{P10001}: orderFilter invalid"),
    ("cancel-all unknown symbol", {"_op": "cancel-all", "symbol": "NOPE"}, 10001,
     f"{P10001}: symbol invalid"),
    # position/trading-stop
    ("trading-stop ok", {"_op": "trading-stop", "symbol": "BTCUSDT", "takeProfit": "65000",
                         "stopLoss": "55000"}, 0, "OK"),
    ("trading-stop partial ok", {"_op": "trading-stop", "symbol": "BTCUSDT",
                                 "tpslMode": "Partial", "takeProfit": "65000",
                                 "tpSize": "0.002"}, 0, "OK"),
    ("trading-stop unknown symbol", {"_op": "trading-stop", "symbol": "NOPE",
                                     "takeProfit": "65000"}, 10001,
     f"{P10001}: symbol invalid"),
    ("trading-stop bad positionIdx", {"_op": "trading-stop", "symbol": "BTCUSDT",
                                      "positionIdx": 7, "takeProfit": "65000"}, 10001,
     f"{P10001}: positionIdx out of range"),
    ("trading-stop bad tpslMode", {"_op": "trading-stop", "symbol": "BTCUSDT",
                                   "tpslMode": "Half", "takeProfit": "65000"}, 10001,
     f"{P10001}: tpslMode invalid"),
    ("trading-stop bad tpTriggerBy", {"_op": "trading-stop", "symbol": "BTCUSDT",
                                      "takeProfit": "65000", "tpTriggerBy": "Mark"}, 10001,
     f"{P10001}: tpTriggerBy invalid"),
    ("trading-stop tp off tick", {"_op": "trading-stop", "symbol": "BTCUSDT",
                                  "takeProfit": "65000.01"}, 10001,
     "price invalid: takeProfit"),
    ("trading-stop bad tpSize", {"_op": "trading-stop", "symbol": "BTCUSDT",
                                 "tpslMode": "Partial", "takeProfit": "65000",
                                 "tpSize": "x"}, 10001, "Qty invalid: tpSize"),
    ("trading-stop tp on the wrong side", {"_op": "trading-stop", "symbol": "BTCUSDT",
                                           "takeProfit": "50000"}, 10001,
     "params error: TP/SL price invalid"),
]


@pytest.mark.parametrize(("body", "code", "msg"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_every_entry_answers_a_request_alike(body: dict[str, Any], code: int, msg: str) -> None:
    answers = {"rest": _service_world("rest", body), "exchange": _exchange_world(body)}
    if body["_op"] in WS_OPS:
        answers["ws"] = _service_world("ws", body)
    assert {name: (a.code, a.msg) for name, a in answers.items()} == {
        name: (code, msg) for name in answers}
    for name, answer in answers.items():
        if code != 0:
            assert answer.after == answer.before, f"{name} changed state on a refusal"
        else:
            assert answer.after != answer.before, f"{name} did nothing on success"
    # The REST and /v5/trade worlds are the same service; the same request ends the same.
    if "ws" in answers:
        assert answers["ws"].after == answers["rest"].after


def test_every_order_op_has_one_translator() -> None:
    """The entries reach the core through `perpx.bybit.translate` only (no parser of their own)."""
    import inspect

    from perpx import exchange
    from perpx.api.rest import order, position
    from perpx.api.ws import trade

    for module in (order, position, trade, exchange):
        source = inspect.getsource(module)
        for word in ("integer(\"positionIdx\"", "choice(\"side\"", "choice(\"orderFilter\"",
                     "choice(\"tpslMode\"", "_TRIGGER_BY", "_ORDER_FILTERS"):
            assert word not in source, f"{module.__name__} parses {word} itself"
