"""Order-book snapshot + deltas rebuild the engine's book exactly, for every depth."""

from __future__ import annotations

import json
import random
from typing import Any

from websockets.sync.client import connect

from api_ws.flow import random_command
from api_ws.live import LiveExchange
from perpx.convert import format_lots, format_ticks


def drain(ws: Any, quiet: float = 0.6) -> list[dict[str, Any]]:
    frames = []
    while True:
        try:
            frames.append(json.loads(ws.recv(timeout=quiet)))
        except TimeoutError:
            return frames


class ClientBook:
    """Applies Bybit's client rules strictly: a delete must name a level the client holds."""

    def __init__(self) -> None:
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.u: int | None = None
        self.seq = 0
        self.messages = 0

    def apply(self, message: dict[str, Any]) -> None:
        data = message["data"]
        assert data["seq"] >= self.seq
        self.seq = data["seq"]
        if message["type"] == "snapshot":
            if self.u is not None and message["topic"].startswith("orderbook.1."):
                assert data["u"] >= self.u
            self.bids = dict(data["b"])
            self.asks = dict(data["a"])
        else:
            assert self.u is not None and data["u"] == self.u + 1
            for side, changes in ((self.bids, data["b"]), (self.asks, data["a"])):
                for price, size in changes:
                    if size == "0":
                        assert price in side, f"delete of unseen level {price}"
                        del side[price]
                    else:
                        side[price] = size
        self.u = data["u"]
        self.messages += 1


def test_snapshot_and_deltas_rebuild_the_book_at_every_depth(live: LiveExchange) -> None:
    depths = (1, 50, 200)
    with connect(live.url + "/v5/public/linear", max_size=None) as ws:
        ws.send(json.dumps({"op": "subscribe", "req_id": 1,
                            "args": [f"orderbook.{d}.BTCUSDT" for d in depths]}))
        books = {d: ClientBook() for d in depths}
        rng = random.Random(11)
        for _round in range(20):
            commands = [random_command(rng, live.engine) for _ in range(40)]
            live.submit_many(commands)
            for frame in drain(ws, quiet=0.02):
                if "topic" in frame:
                    books[int(frame["topic"].split(".")[1])].apply(frame)
        for frame in drain(ws):
            if "topic" in frame:
                books[int(frame["topic"].split(".")[1])].apply(frame)
        spec = live.engine.instruments["BTCUSDT"]
        for depth in depths:
            bids, asks = live.call(lambda d=depth: live.engine.books["BTCUSDT"].depth(d))
            want_bids = {format_ticks(spec, p): format_lots(spec, q) for p, q in bids}
            want_asks = {format_ticks(spec, p): format_lots(spec, q) for p, q in asks}
            assert books[depth].bids == want_bids, depth
            assert books[depth].asks == want_asks, depth
        # Coalescing: 800 commands in 20 bursts gave far fewer than 800 messages per depth.
        assert books[50].messages < 400
        assert len(books[200].bids) > 50  # the deep view really is deeper


def test_a_new_subscriber_gets_the_shared_view_and_follows_it(live: LiveExchange) -> None:
    rng = random.Random(5)
    live.submit_many([random_command(rng, live.engine) for _ in range(200)])
    with connect(live.url + "/v5/public/linear") as first:
        first.send(json.dumps({"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]}))
        live.submit_many([random_command(rng, live.engine) for _ in range(50)])
        with connect(live.url + "/v5/public/linear") as second:
            second.send(json.dumps({"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]}))
            clients = (ClientBook(), ClientBook())
            for _round in range(5):
                live.submit_many([random_command(rng, live.engine) for _ in range(30)])
            for ws, book in zip((first, second), clients, strict=True):
                for frame in drain(ws):
                    if "topic" in frame:
                        book.apply(frame)
            assert clients[0].bids == clients[1].bids and clients[0].asks == clients[1].asks
            assert clients[0].u == clients[1].u
