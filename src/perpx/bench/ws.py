"""`perpx bench ws`: WebSocket messages per second delivered to many subscribers.

One process runs the exchange (engine, sequencer with an in-memory journal, stream hub, uvicorn
on a loopback port) in one thread and the clients (the `websockets` library, counting frames
without parsing them) in another. Every client subscribes to `orderbook.50.BTCUSDT` and
`publicTrade.BTCUSDT`; a seeded order flow then runs at a fixed pace for a fixed time, and the
figure is frames received by all clients per second. The baseline is the same run with one
subscriber; the ratio says how much the fan-out multiplies delivered throughput. Both threads
share one interpreter lock and two cores, so the figures are for the whole loop, clients included.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from perpx.api.server import LoopServerThread
from perpx.api.ws.hub import StreamHub
from perpx.api.ws.server import build_routes
from perpx.core import CancelOrder, Engine, OrderType, PlaceOrder, Side, TimeInForce
from perpx.core.commands import Command, Deposit, MarkPrice
from perpx.instruments import load_instruments
from perpx.sequencer import Sequencer
from perpx.store.journal import MemoryJournal

TOPICS = ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"]
_MID = 300_000  # 30,000.0 in BTCUSDT ticks


class _Server:
    """The exchange behind uvicorn, in a thread with its own event loop."""

    def __init__(self) -> None:
        self.engine = Engine([s for s in load_instruments() if s.symbol == "BTCUSDT"])
        self.sequencer = Sequencer(self.engine, MemoryJournal())
        self.hub = StreamHub(self.engine, max_queue=100_000)
        self.sequencer.subscribe(self.hub.on_durable)
        app = Starlette(routes=build_routes(self.hub))
        self.thread = LoopServerThread(app)
        self.url = f"ws://127.0.0.1:{self.thread.port}/v5/public/linear"

    def start(self) -> None:
        self.thread.start()

    def run(self, coroutine: Any) -> Any:
        return self.thread.run(coroutine)

    def stop(self) -> None:
        self.thread.stop()


def _flow_command(rng: random.Random, engine: Engine) -> Command:
    roll = rng.random()
    if roll < 0.25 and engine.open_orders:
        order = engine.open_orders[rng.choice(list(engine.open_orders)[-200:])]
        return CancelOrder(0, 0, order.account_id, "BTCUSDT", order.order_id)
    side = Side.BUY if rng.random() < 0.5 else Side.SELL
    account = rng.randint(1, 5)
    if roll < 0.35:
        return PlaceOrder(0, 0, account, "BTCUSDT", side, OrderType.MARKET, rng.randint(1, 10))
    behind = rng.randint(-3, 80)
    price = _MID - behind if side is Side.BUY else _MID + behind
    return PlaceOrder(0, 0, account, "BTCUSDT", side, OrderType.LIMIT, rng.randint(1, 20), price,
                      TimeInForce.GTC)


async def _drive(server: _Server, seconds: float, per_tick: int, seed: int) -> int:
    """Submit `per_tick` commands every 10 ms for `seconds`; return how many."""
    rng = random.Random(seed)
    sequencer = server.sequencer
    count = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        futures = [sequencer.submit_nowait(_flow_command(rng, server.engine))
                   for _ in range(per_tick)]
        count += len(futures)
        await asyncio.gather(*futures)
        await asyncio.sleep(0.01)
    return count


def _measure(subscribers: int, seconds: float, per_tick: int, seed: int) -> dict[str, Any]:
    server = _Server()
    server.start()
    try:
        async def setup() -> None:
            for account in range(1, 6):
                await server.sequencer.submit(Deposit(0, 0, account, "USDT", 10**17))
            await server.sequencer.submit(MarkPrice(0, 0, "BTCUSDT", _MID))

        server.run(setup())
        received = [0] * subscribers
        cut_off: list[int] = []
        ready = threading.Event()
        done = threading.Event()
        counting = threading.Event()

        async def client(i: int, connected: Callable[[], None]) -> None:
            async with connect(server.url, max_size=None, ping_interval=None) as ws:
                await ws.send(json.dumps({"op": "subscribe", "args": TOPICS}))
                await ws.recv()  # the ack
                connected()
                while not done.is_set():
                    try:
                        await asyncio.wait_for(ws.recv(), 0.2)
                    except TimeoutError:
                        continue
                    except ConnectionClosed:
                        cut_off.append(i)  # fell too far behind (or the server stopped)
                        return
                    if counting.is_set():
                        received[i] += 1

        def clients() -> None:
            async def main() -> None:
                pending = [subscribers]

                def connected() -> None:
                    pending[0] -= 1
                    if pending[0] == 0:
                        ready.set()

                await asyncio.gather(*(client(i, connected) for i in range(subscribers)))

            asyncio.run(main())

        thread = threading.Thread(target=clients, daemon=True)
        thread.start()
        ready.wait(120)
        time.sleep(0.3)  # the snapshots
        counting.set()
        started = time.perf_counter()
        commands = server.run(_drive(server, seconds, per_tick, seed))
        time.sleep(0.3)  # the last throttled deltas
        elapsed = time.perf_counter() - started
        counting.clear()
        done.set()
        thread.join(30)
        total = sum(received)
        return {"subscribers": subscribers, "commands": commands, "seconds": elapsed,
                "messages": total, "msgs_per_s": total / elapsed,
                "per_subscriber_per_s": total / elapsed / subscribers, "cut_off": len(cut_off)}
    finally:
        server.stop()


def bench_ws(subscribers: int = 200, seconds: float = 3.0, per_tick: int = 20, seed: int = 42,
             echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure delivered messages/s with one subscriber, then with `subscribers`; print JSON."""
    if subscribers < 1 or seconds <= 0 or per_tick < 1:
        raise ValueError("subscribers and per_tick must be at least 1, seconds above 0")
    base = _measure(1, seconds, per_tick, seed)
    echo(f"baseline: 1 subscriber, {base['commands']} commands in {base['seconds']:.2f} s: "
         f"{base['msgs_per_s']:,.0f} msgs/s")
    many = _measure(subscribers, seconds, per_tick, seed)
    echo(f"{subscribers} subscribers, {many['commands']} commands in {many['seconds']:.2f} s: "
         f"{many['msgs_per_s']:,.0f} msgs/s ({many['per_subscriber_per_s']:,.1f} per subscriber)")
    ratio = many["msgs_per_s"] / base["msgs_per_s"] if base["msgs_per_s"] else 0.0
    echo(f"fan-out ratio (delivered msgs/s, {subscribers} vs 1 subscriber): {ratio:.1f}x")
    result = {"bench": "ws", "subscribers": subscribers, "topics": TOPICS,
              "ws_msgs_per_s": round(many["msgs_per_s"], 1),
              "baseline_msgs_per_s": round(base["msgs_per_s"], 1),
              "ratio_vs_baseline": round(ratio, 2),
              "per_subscriber_msgs_per_s": round(many["per_subscriber_per_s"], 2),
              "baseline_per_subscriber_msgs_per_s": round(base["per_subscriber_per_s"], 2),
              "commands": many["commands"], "seconds": round(many["seconds"], 3),
              "cut_off": many["cut_off"]}
    echo(json.dumps(result))
    return result
