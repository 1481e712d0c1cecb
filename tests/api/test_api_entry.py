"""Every way to act is checked alike: REST, `/v5/trade` and `perpx.Exchange` (issue #12).

One server per module (real uvicorn, real KeyStore folder, real WebSocket clients); keys are
revoked through a second KeyStore on the same folder, as `perpx keys revoke` would.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from apisupport import sign
from perpx import Exchange
from perpx.api.app import create_app
from perpx.api.keys import ApiKey, KeyStore
from perpx.api.server import ServerThread
from perpx.convert import to_atoms
from perpx.core.commands import AmendOrder, CancelOrder, Command, PlaceOrder
from perpx.instruments import load_instruments
from perpx.service import ExchangeService
from perpx.store.history_sqlite import SqliteHistory
from perpx.store.journal import MemoryJournal

ORDER_COMMANDS = (PlaceOrder, AmendOrder, CancelOrder)


@dataclass
class Entry:
    url: str
    ws: str
    folder: Path
    service: ExchangeService
    keys: KeyStore
    journal: MemoryJournal

    def key(self, **options: Any) -> ApiKey:
        options.setdefault("demo_funds", "100000")
        return self.keys.create(**options)

    def commands_of(self, account: int, after_seq: int) -> list[Command]:
        return [c for c in self.journal.read(after_seq + 1)
                if isinstance(c, ORDER_COMMANDS) and c.account_id == account]


@pytest.fixture(scope="module")
def entry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Entry]:
    folder = tmp_path_factory.mktemp("entry")
    keys = KeyStore(folder)
    journal = MemoryJournal()
    service = ExchangeService(load_instruments(), journal, maker=False,
                              history=SqliteHistory(folder / "history.db"), feed_interval_s=3600)
    server = ServerThread(create_app(service, keys, manage_service=True)).start()
    try:
        yield Entry(server.url, server.url.replace("http://", "ws://"), folder, service, keys,
                    journal)
    finally:
        server.stop()
        keys.close()


def rest(entry: Entry, key: ApiKey, path: str, body: dict[str, Any] | None = None, *,
         query: str = "", window: str = "5000", signature: bytes | None = None,
         raw: str | None = None) -> dict[str, Any]:
    """A signed REST call (POST with `body` or `raw`, else GET with `query`)."""
    payload = raw if raw is not None else json.dumps(body) if body is not None else query
    timestamp = str(int(time.time() * 1000))
    headers: dict[str, Any] = {
        "X-BAPI-API-KEY": key.api_key, "X-BAPI-TIMESTAMP": timestamp,
        "X-BAPI-RECV-WINDOW": window,
        "X-BAPI-SIGN": signature or sign(key, timestamp, window, payload).encode()}
    post = body is not None or raw is not None
    reply = httpx.request("POST" if post else "GET",
                          entry.url + path + ("" if post else f"?{query}"), headers=headers,
                          content=payload.encode() if post else None)
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
    return message


def auth(ws: ClientConnection, key: ApiKey, ahead_ms: int = 10_000) -> dict[str, Any]:
    expires = int(time.time() * 1000) + ahead_ms
    ws.send(json.dumps({"op": "auth", "args": [key.api_key, expires,
                                               key.sign(f"GET/realtime{expires}")]}))
    return recv(ws)


def trade(ws: ClientConnection, op: str, body: dict[str, Any]) -> dict[str, Any]:
    ws.send(json.dumps({"reqId": op, "op": op, "args": [body]}))
    return recv(ws)


def assert_alive(ws: ClientConnection) -> None:
    ws.send(json.dumps({"op": "ping", "req_id": "alive"}))
    reply = recv(ws)
    assert reply.get("op") in ("pong", "ping"), reply


ORDER = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit",
         "qty": "0.01", "price": "20000"}


# -- 1. one permission check ----------------------------------------------------------------


def test_a_read_only_key_cannot_trade_on_the_trade_stream(entry: Entry) -> None:
    """Finding (critical): a read-only key authenticated on /v5/trade and traded."""
    reader = entry.key(read_only=True)
    seq = entry.journal.last_seq()
    with connect(entry.ws + "/v5/trade") as ws:
        assert auth(ws, reader)["retCode"] == 0  # reading is allowed: it authenticates
        for op, body in (("order.create", ORDER),
                         ("order.cancel", {**ORDER, "orderLinkId": "x"})):
            refused = trade(ws, op, body)
            assert (refused["retCode"], refused["reqId"]) == (10005, op)
    assert rest(entry, reader, "/v5/order/create", ORDER)["retCode"] == 10005  # as REST
    assert entry.commands_of(reader.account_id, seq) == []


def test_revoked_keys_sessions_close_within_a_second_and_trade_no_more(entry: Entry) -> None:
    """Finding (high): after `perpx keys revoke` open /v5/trade and /v5/private sessions went on."""
    key = entry.key()
    with connect(entry.ws + "/v5/trade") as trader, connect(entry.ws + "/v5/private") as private:
        assert auth(trader, key)["retCode"] == 0
        assert auth(private, key)["success"] is True
        assert trade(trader, "order.create", ORDER)["retCode"] == 0
        other = KeyStore(entry.folder)  # the CLI, in another process
        try:
            assert other.revoke(key.api_key)
        finally:
            other.close()
        revoked_at = time.monotonic()
        seq = entry.journal.last_seq()
        for ws in (trader, private):
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(timeout=2.0)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert time.monotonic() - revoked_at < 1.2
        with pytest.raises(ConnectionClosed):
            trader.send(json.dumps({"op": "order.create", "args": [ORDER]}))
    assert rest(entry, key, "/v5/order/create", ORDER)["retCode"] == 10003
    with connect(entry.ws + "/v5/trade") as again:
        assert auth(again, key)["retCode"] == 10003
    assert entry.commands_of(key.account_id, seq) == []


# -- 4. /v5/trade shares the key's rate limit -----------------------------------------------


def test_the_trade_stream_shares_the_keys_rest_rate_limit(entry: Entry) -> None:
    """Finding (medium): /v5/trade had no rate limit (600+ orders/s on a 200/s key)."""
    key = entry.key(rate_limit=3)
    with connect(entry.ws + "/v5/trade") as ws:
        assert auth(ws, key)["retCode"] == 0
        while time.time() % 1 > 0.3:  # start early in a one-second window
            time.sleep(0.01)
        for _ in range(3):
            assert rest(entry, key, "/v5/order/realtime",
                        query="category=linear&symbol=BTCUSDT")["retCode"] == 0
        assert trade(ws, "order.create", ORDER)["retCode"] == 10006
        time.sleep(1.0)
        assert trade(ws, "order.create", ORDER)["retCode"] == 0  # a new window
        assert trade(ws, "order.create", ORDER)["retCode"] == 0
        assert rest(entry, key, "/v5/order/create", ORDER)["retCode"] in (0, 10006)


# -- 6. demo funds on a first WebSocket use -------------------------------------------------


@pytest.mark.parametrize("endpoint", ["/v5/private", "/v5/trade"])
def test_demo_funds_are_credited_when_the_first_use_is_a_websocket(entry: Entry,
                                                                  endpoint: str) -> None:
    """Finding (low): demo funds were not credited when a key's first use was the WebSocket."""
    key = entry.key(demo_funds="5000")
    with connect(entry.ws + endpoint) as ws:
        auth(ws, key)
        account = entry.service.engine.clearing.account(key.account_id)
        assert account is not None and account.balance("USDT") == to_atoms("5000")
        if endpoint == "/v5/trade":
            assert trade(ws, "order.create", ORDER)["retCode"] == 0  # it can trade at once
    wallet = rest(entry, key, "/v5/account/wallet-balance", query="accountType=UNIFIED")
    assert wallet["result"]["list"][0]["totalWalletBalance"].startswith("5000")  # once only


# -- 5. bounded replay windows --------------------------------------------------------------


def test_recv_window_and_ws_expires_are_bounded(entry: Entry) -> None:
    """Finding (low): recv_window and WS auth `expires` had no upper bound (replay forever)."""
    key = entry.key()
    query = "category=linear&symbol=BTCUSDT"
    assert rest(entry, key, "/v5/order/realtime", query=query, window="60000")["retCode"] == 0
    assert rest(entry, key, "/v5/order/realtime", query=query,
                window="86400000")["retCode"] == 10002
    with connect(entry.ws + "/v5/trade") as ws:
        assert auth(ws, key, ahead_ms=10 * 86_400_000)["retCode"] == 10002
        assert auth(ws, key, ahead_ms=10_000)["retCode"] == 0  # ccxt.pro's now + 10 s
    with connect(entry.ws + "/v5/private") as ws:
        assert auth(ws, key, ahead_ms=400_000)["success"] is False
        assert auth(ws, key, ahead_ms=1_000)["success"] is True  # pybit's now + 1 s


# -- 3. no unhandled exception from any input -----------------------------------------------


def test_odd_rest_input_gets_bybit_codes(entry: Entry) -> None:
    """Finding (low): a non-ASCII X-BAPI-SIGN and deeply nested JSON raised (answered 10016)."""
    key = entry.key()
    assert rest(entry, key, "/v5/order/create", ORDER,
                signature="é".encode("latin-1") * 64)["retCode"] == 10004
    nested = '{"category":' * 5000 + '"linear"' + "}" * 5000
    assert rest(entry, key, "/v5/order/create", raw=nested)["retCode"] == 10001
    assert rest(entry, key, "/v5/order/create", raw="[" * 100_000)["retCode"] == 10001
    assert entry.service.fatal is None


def test_odd_websocket_frames_are_answered_and_the_connection_kept(entry: Entry) -> None:
    """Finding (low): a binary frame, deep JSON or positionIdx "x"/[1] dropped the connection."""
    key = entry.key()
    with connect(entry.ws + "/v5/trade") as ws:
        assert auth(ws, key)["retCode"] == 0
        for frame in (b'{"op":"ping"}', "[" * 100_000, '{"op":' * 5000 + "1" + "}" * 5000,
                      "\x00not json", "[1]"):
            ws.send(frame)
            assert recv(ws)["success"] is False
            assert_alive(ws)
        for bad in ("x", [1], {"a": 1}, True, 3, -1, "1e1"):
            refused = trade(ws, "order.create", {**ORDER, "positionIdx": bad})
            assert refused["retCode"] == 10001, (bad, refused)
            assert_alive(ws)
        for args in (None, [], [1], [ORDER, ORDER], "x"):
            ws.send(json.dumps({"op": "order.create", "args": args}))
            assert recv(ws)["retCode"] == 10001
        ws.send(json.dumps({"op": "order.explode", "args": [ORDER]}))
        assert recv(ws)["retCode"] == 10404
        assert_alive(ws)
    for path in ("/v5/private", "/v5/public/linear"):
        with connect(entry.ws + path) as ws:
            ws.send(b"\x00\xff")
            assert recv(ws)["success"] is False
            ws.send(json.dumps({"op": "auth", "args": ["k", "\ud800", "é"]}))
            recv(ws)
            assert_alive(ws)


# -- 2. one translator ----------------------------------------------------------------------

GOOD = "same command"
# (op, wire parameters without category, expected: GOOD or the retCode of all three)
TABLE: list[tuple[str, dict[str, Any], str | int]] = [
    ("order.create", {"side": "Buy", "orderType": "Limit", "qty": "0.01", "price": "20000"},
     GOOD),
    ("order.create", {"side": "Sell", "orderType": "Market", "qty": "0.02",
                      "timeInForce": "GTC"}, GOOD),
    ("order.create", {"side": "Buy", "orderType": "Limit", "qty": "0.01", "price": "20000",
                      "timeInForce": "PostOnly", "smpType": "CancelMaker",
                      "orderLinkId": "t-1", "positionIdx": 0}, GOOD),
    ("order.create", {"side": "Sell", "orderType": "Limit", "qty": "0.01", "price": "90000",
                      "reduceOnly": True, "closeOnTrigger": True}, GOOD),
    ("order.create", {"side": "Buy", "orderType": "Market", "qty": "0.01",
                      "triggerPrice": "90000", "triggerDirection": 1,
                      "triggerBy": "MarkPrice"}, GOOD),
    ("order.create", {"side": "Buy", "orderType": "Limit", "qty": "0.01", "price": "20000",
                      "takeProfit": "30000", "stopLoss": "15000", "tpslMode": "Partial",
                      "tpOrderType": "Limit", "tpLimitPrice": "29990",
                      "tpTriggerBy": "MarkPrice"}, GOOD),
    ("order.amend", {"orderId": "123", "price": "21000", "qty": "0.02"}, GOOD),
    ("order.amend", {"orderLinkId": "t-1", "triggerPrice": "95000", "takeProfit": "0"}, GOOD),
    ("order.cancel", {"orderId": "7"}, GOOD),
    ("order.cancel", {"orderLinkId": "t-1"}, GOOD),
    ("order.create", {"side": "Up", "orderType": "Limit", "qty": "0.01", "price": "1"}, 10001),
    ("order.create", {"side": "Buy", "orderType": "Stop", "qty": "0.01", "price": "1"}, 10001),
    ("order.create", {"side": "Buy", "orderType": "Limit", "qty": "0.0001",
                      "price": "20000"}, 10001),
    ("order.create", {"side": "Buy", "orderType": "Limit", "qty": "abc", "price": "1"}, 10001),
    ("order.create", {"side": "Buy", "orderType": "Limit", "qty": "0.01",
                      "price": "20000.05"}, 10001),
    ("order.create", {"side": "Buy", "orderType": "Limit", "qty": "0.01"}, 10001),
    ("order.create", {"side": "Buy", "orderType": "Limit", "qty": "0.01", "price": "20000",
                      "positionIdx": "x"}, 10001),
    ("order.create", {"side": "Buy", "orderType": "Limit", "qty": "0.01", "price": "20000",
                      "positionIdx": [1]}, 10001),
    ("order.create", {"side": "Buy", "orderType": "Limit", "qty": "0.01", "price": "20000",
                      "positionIdx": 5}, 10001),
    ("order.create", {"side": "Buy", "orderType": "Limit", "qty": "0.01", "price": "20000",
                      "smpType": "Bogus"}, 10001),
    ("order.create", {"side": "Buy", "orderType": "Limit", "qty": "0.01", "price": "20000",
                      "timeInForce": "Forever"}, 10001),
    ("order.create", {"side": "Buy", "orderType": "Market", "qty": "0.01",
                      "triggerPrice": "90000"}, 10001),
    ("order.create", {"symbol": "DOGEUSDT", "side": "Buy", "orderType": "Limit",
                      "qty": "1", "price": "1"}, 10001),
    ("order.cancel", {"orderId": "1_000"}, 110001),
    ("order.cancel", {"orderId": "\uff11\uff12"}, 110001),
    ("order.cancel", {"orderId": "-5"}, 110001),
    ("order.amend", {"orderId": "abc", "price": "1"}, 110001),
    ("order.cancel", {}, 10001),
]
_REST = {"order.create": "/v5/order/create", "order.amend": "/v5/order/amend",
         "order.cancel": "/v5/order/cancel"}


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", r"_\1", name).lower()


def _zeroed(command: Command) -> Command:
    return msgspec.structs.replace(command, seq=0, ts_ms=0)


def test_one_table_of_parameters_means_the_same_through_rest_ws_and_exchange(
        entry: Entry) -> None:
    """Finding: the entry points drifted (/v5/trade dropped smpType, took orderId "1_000",
    raised on a bad positionIdx); one translator now serves REST, /v5/trade and Exchange."""
    key = entry.key(rate_limit=100_000)
    exchange = Exchange(load_instruments())
    applied: list[Command] = []
    exchange.subscribe(lambda command, events: applied.append(command))
    methods = {"order.create": exchange.place_order, "order.amend": exchange.amend,
               "order.cancel": exchange.cancel}
    with connect(entry.ws + "/v5/trade") as ws:
        assert auth(ws, key)["retCode"] == 0
        for op, row, expected in TABLE:
            body = {"category": "linear", "symbol": "BTCUSDT", **row}
            seq = entry.journal.last_seq()
            by_rest = rest(entry, key, _REST[op], body)["retCode"]
            rest_commands = entry.commands_of(key.account_id, seq)
            seq = entry.journal.last_seq()
            by_ws = trade(ws, op, body)["retCode"]
            ws_commands = entry.commands_of(key.account_id, seq)
            applied.clear()
            kwargs = {_snake(name): value for name, value in body.items() if name != "category"}
            by_exchange = methods[op](key.account_id, **kwargs).ret_code
            if expected == GOOD:
                assert len(rest_commands) == len(ws_commands) == len(applied) == 1, row
                assert _zeroed(rest_commands[0]) == _zeroed(ws_commands[0]) == \
                    _zeroed(applied[0]), row
            else:
                assert (by_rest, by_ws, by_exchange) == (expected,) * 3, row
                assert rest_commands == ws_commands == applied == [], row
