"""API gateways in processes of their own (issue #15, items 4 and 7), on both journals.

- Two `perpx serve --role gateway` on one port (SO_REUSEPORT) in front of a writer: orders
  placed on fresh connections (the kernel spreads them over both) are read back at once on
  other fresh connections, i.e. through either gateway (read-your-writes across gateways).
- A gateway killed -9 loses nothing acknowledged (the writer journaled it before the answer);
  the other one serves alone, and the killed one, restarted, catches up from the journal.
- A key's rate limit holds across the gateways (they share one count), and a key revoked
  with the key store (as `perpx keys revoke`) is refused by a gateway within a
  second.
- `perpx serve --gateways 2`: the writer starts its gateways on its port, restarts one
  killed -9, and takes them all down when it stops, cleanly or killed -9.
- A gateway forwarding over NATS request/reply serves its WebSocket streams (private,
  public, `/v5/trade`) from what its follower folds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from perpx.api.keys import ApiKey, KeyStore
from support.serving import Acked, Server, alive, check_orders, free_port, signed

RECV = "5000"


def order(price: int) -> dict[str, str]:
    return {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "qty": "0.001",
            "orderType": "Limit", "price": str(price), "timeInForce": "GTC"}


def place_and_read_back(url: str, key: ApiKey, acked: Acked, count: int, first: int) -> None:
    """Place `count` orders, each on a new connection, and read each back on another one."""
    for number in range(first, first + count):
        with httpx.Client(base_url=url, timeout=10) as client:
            placed = signed(client, key, "POST", "/v5/order/create", order(40_000 + number))
        assert placed["retCode"] == 0, placed
        order_id = placed["result"]["orderId"]
        with acked.lock:
            acked.orders[order_id] = (0, False)
        with httpx.Client(base_url=url, timeout=10) as client:
            rows = signed(client, key, "GET", "/v5/order/realtime",
                          {"category": "linear", "orderId": order_id})["result"]["list"]
        assert [row["orderId"] for row in rows] == [order_id], "a read missed its own write"


def started(writer: Server, gateways: int) -> list[int]:
    """Wait until the writer serves through its gateways; return their pids."""
    deadline = time.monotonic() + 60
    while not any(f"through {gateways} gateways" in line for line in writer.output):
        writer.next_line(deadline)
    return [int(found) for found in re.findall(r"gateway \d: started, pid (\d+)",
                                               "\n".join(writer.output))]


def limited_burst(url: str, key: ApiKey) -> None:
    """A key's limit holds across gateways: bursts on fresh connections (spread over both)."""
    def ask(_: int) -> httpx.Response:
        with httpx.Client(base_url=url, timeout=10) as client:
            now = int(time.time() * 1000)
            return client.get("/v5/account/info", headers={
                "X-BAPI-API-KEY": key.api_key, "X-BAPI-TIMESTAMP": str(now),
                "X-BAPI-RECV-WINDOW": RECV,
                "X-BAPI-SIGN": key.sign(f"{now}{key.api_key}{RECV}")})

    allowed: dict[str, int] = {}
    refused = 0
    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            for reply in pool.map(ask, range(16)):
                window = reply.headers["X-Bapi-Limit-Reset-Timestamp"]
                if reply.json()["retCode"] == 0:
                    allowed[window] = allowed.get(window, 0) + 1
                else:
                    assert reply.json()["retCode"] == 10006
                    refused += 1
    assert refused and max(allowed.values()) <= 3, allowed


def test_two_gateways_on_one_port_kill9_and_catch_up(tmp_path: Path,
                                                    journal_location: str | None) -> None:
    data = tmp_path / "data"
    sock = tmp_path / "writer.sock"
    # Snapshots often: a gateway restarted later starts from one (and its read side).
    writer = Server(data, journal_location, extra=("--command-socket", str(sock),
                                                   "--snapshot-every", "20"))
    keys = KeyStore(data)  # as `perpx keys create`: the gateways read the same key table
    alice = keys.create(demo_funds="100000", rate_limit=10_000)
    port = free_port()
    gateway_args = ("--command-socket", str(sock))
    gateways = [Server(data, journal_location, port=port, role="gateway", extra=gateway_args)
                for _ in range(2)]
    url = f"http://127.0.0.1:{port}"
    acked = Acked()
    try:
        place_and_read_back(url, alice, acked, 30, 0)
        limited_burst(url, keys.create(demo_funds="1000", rate_limit=3))
        gateways[0].kill()
        place_and_read_back(url, alice, acked, 5, 30)  # the other one serves alone
        gateways[0] = Server(data, journal_location, port=port, role="gateway",
                             extra=gateway_args)
        start = next(line for line in gateways[0].output if "following the journal" in line)
        assert int(re.search(r"from snapshot (\d+)", start).group(1)) > 0, start  # type: ignore[union-attr]
        gateways[1].kill()
        # Only the restarted gateway listens now: it has caught up with what the other took.
        check_orders(url, [alice], acked)
        assert len(acked.orders) == 35
        # The writer's own API (a single process) shows the same orders.
        check_orders(writer.url, [alice], acked)
        # Revoked with the key store, as `perpx keys revoke`: refused within a second.
        revoked_at = time.monotonic()
        assert keys.revoke(alice.api_key)
        while True:
            with httpx.Client(base_url=url, timeout=10) as client:
                code = signed(client, alice, "GET", "/v5/account/info", {})["retCode"]
            if code == 10003:
                break
            assert time.monotonic() - revoked_at < 1.0, "a revoked key still works"
            time.sleep(0.05)
    finally:
        for gateway in gateways:
            gateway.kill()
        writer.kill()
        keys.close()


def test_the_writer_starts_restarts_and_stops_its_gateways(tmp_path: Path) -> None:
    data = tmp_path / "data"
    writer = Server(data, None, extra=("--gateways", "2"))
    pids = started(writer, 2)
    assert len(pids) == 2 and all(alive(pid) for pid in pids)
    keys = KeyStore(data)
    bob = keys.create(demo_funds="100000", rate_limit=10_000)
    acked = Acked()
    try:
        place_and_read_back(writer.url, bob, acked, 10, 0)
        with httpx.Client(base_url=writer.url, timeout=10) as client:
            wallet = signed(client, bob, "GET", "/v5/account/wallet-balance",
                            {"accountType": "UNIFIED"})["result"]["list"][0]
        # Funded once, by the writer, however many gateways saw the new key first.
        assert wallet["totalWalletBalance"].startswith("100000"), wallet
        seen = len(writer.output)
        os.kill(pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while not any("gateway 0: perpx" in line and "serving" in line
                      for line in writer.output[seen:]):  # restarted, and serving again
            writer.next_line(deadline)
        restarted = [int(found) for found in re.findall(
            r"gateway \d: started, pid (\d+)", "\n".join(writer.output))]
        assert len(restarted) == 3 and not alive(pids[0])
        check_orders(writer.url, [bob], acked)
        place_and_read_back(writer.url, bob, acked, 4, 10)
        writer.stop()  # SIGTERM: the gateways go with it
        assert writer.proc.returncode == 0
        assert not any(alive(pid) for pid in restarted)
    finally:
        writer.kill()
        keys.close()


def test_gateways_end_with_a_writer_killed_9(tmp_path: Path) -> None:
    writer = Server(tmp_path / "data", None, extra=("--gateways", "1"))
    pids = started(writer, 1)
    assert len(pids) == 1
    writer.kill()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "a gateway outlived its writer"
        time.sleep(0.05)


@pytest.mark.parametrize("body", [json.dumps(order(1)), "not json"])
def test_a_gateway_without_a_writer_says_nothing_was_done(tmp_path: Path, body: str) -> None:
    data = tmp_path / "data"
    writer = Server(data, None, extra=("--command-socket", str(tmp_path / "w.sock")))
    keys = KeyStore(data)
    carol = keys.create(demo_funds="100000")
    gateway = Server(data, None, role="gateway",
                     extra=("--command-socket", str(tmp_path / "w.sock")))
    try:
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            assert signed(client, carol, "GET", "/v5/account/info", {})["retCode"] == 0
            writer.kill()
            now = int(time.time() * 1000)
            headers = {"X-BAPI-API-KEY": carol.api_key, "X-BAPI-TIMESTAMP": str(now),
                       "X-BAPI-RECV-WINDOW": RECV,
                       "X-BAPI-SIGN": carol.sign(f"{now}{carol.api_key}{RECV}{body}"),
                       "Content-Type": "application/json"}
            reply = client.post("/v5/order/create", content=body, headers=headers).json()
        if body == "not json":
            assert reply["retCode"] == 10001  # parsed and refused in the gateway alone
        else:
            assert reply["retCode"] == 10016 and "nothing was done" in reply["retMsg"], reply
    finally:
        gateway.kill()
        writer.kill()
        keys.close()


def _recv(ws: ClientConnection, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Return the next frame `wanted` accepts (others, e.g. snapshots, are skipped)."""
    deadline = time.monotonic() + 20
    while True:
        frame = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if wanted(frame):
            return dict(frame)


@pytest.mark.service
def test_a_gateway_over_nats_with_its_streams(tmp_path: Path, nats_url: str,
                                              stream_name: str) -> None:
    """A gateway on another machine's footing: commands as NATS requests, its own streams.

    Its private and public WebSocket streams publish from the commands its follower folds,
    and `/v5/trade` forwards like REST.
    """
    data = tmp_path / "data"
    nats_args = ("--command-nats", nats_url, "--bus-stream", stream_name)
    writer = Server(data, None, extra=nats_args)
    keys = KeyStore(data)
    dave = keys.create(demo_funds="100000", rate_limit=10_000)
    gateway = Server(data, None, role="gateway", extra=nats_args)
    ws_url = gateway.url.replace("http://", "ws://")
    try:
        with connect(ws_url + "/v5/private") as private, \
                connect(ws_url + "/v5/public/linear") as public, \
                connect(ws_url + "/v5/trade") as trade, \
                httpx.Client(base_url=gateway.url, timeout=10) as client:
            for ws in (private, trade):
                expires = int(time.time() * 1000) + 10_000
                ws.send(json.dumps({"op": "auth", "args": [
                    dave.api_key, expires, dave.sign(f"GET/realtime{expires}")]}))
                reply = json.loads(ws.recv(timeout=10))
                assert reply.get("success") is True or reply.get("retCode") == 0, reply
            private.send(json.dumps({"op": "subscribe", "args": ["order"]}))
            public.send(json.dumps({"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]}))
            _recv(private, lambda f: f.get("op") == "subscribe")
            _recv(public, lambda f: f.get("op") == "subscribe")
            placed = signed(client, dave, "POST", "/v5/order/create", order(41_234))
            assert placed["retCode"] == 0, placed
            order_id = placed["result"]["orderId"]
            update = _recv(private, lambda f: f.get("topic") == "order")
            assert update["data"][0]["orderId"] == order_id
            book = _recv(public, lambda f: f.get("topic") == "orderbook.50.BTCUSDT" and any(
                level[0] == "41234.00" for level in f["data"].get("b", [])))
            assert book["data"]["s"] == "BTCUSDT"
            trade.send(json.dumps({"reqId": "c1", "op": "order.cancel", "args": [
                {"category": "linear", "symbol": "BTCUSDT", "orderId": order_id}]}))
            cancelled = _recv(trade, lambda f: f.get("reqId") == "c1")
            assert cancelled["retCode"] == 0, cancelled
            # Read your writes: the cancel is visible on the next request, through REST.
            rows = signed(client, dave, "GET", "/v5/order/realtime",
                          {"category": "linear", "orderId": order_id})["result"]["list"]
            assert [row["orderStatus"] for row in rows] == ["Cancelled"]
    finally:
        gateway.kill()
        writer.kill()
        keys.close()
