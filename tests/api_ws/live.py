"""A live exchange for WebSocket tests: engine + sequencer + hub behind uvicorn on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable, Collection
from typing import Any

from starlette.applications import Starlette

from perpx.api.keys import ApiKey
from perpx.api.limits import Limits
from perpx.api.server import LoopServerThread
from perpx.api.ws.gate import Gate
from perpx.api.ws.hub import StreamHub
from perpx.api.ws.server import build_routes
from perpx.convert import to_atoms, to_lots, to_ticks
from perpx.core import Engine, OrderType, PlaceOrder, Side, TimeInForce
from perpx.core.commands import Command, Deposit, MarkPrice
from perpx.core.events import Event
from perpx.core.instruments import InstrumentSpec
from perpx.sequencer import Sequencer
from perpx.store.journal import MemoryJournal
from support.builders import btcusdt, ethusdt

KEYS = {"key-alice": ("secret-alice", 1), "key-bob": ("secret-bob", 2)}


def sign(secret: str, expires: int | str) -> str:
    return hmac.new(secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()


class FixedKeys:
    """The test keys with fixed secrets (so frames are signed without a key store)."""

    def get(self, api_key: str) -> ApiKey | None:
        found = KEYS.get(api_key)
        if found is None:
            return None
        secret, account = found
        return ApiKey(api_key, secret, account, False, "0", 1_000_000, "", 0)

    def revoked_among(self, api_keys: Collection[str]) -> set[str]:
        return {key for key in api_keys if key not in KEYS}


class LiveExchange:
    """Runs the server in a thread with its own event loop; the test drives the sequencer."""

    def __init__(self, max_buffer: int | None = None,
                 specs: list[InstrumentSpec] | None = None,
                 clock: Callable[[], int] | None = None, limits: Limits | None = None) -> None:
        self.engine = Engine(specs if specs is not None else [btcusdt(), ethusdt()])
        self.sequencer = (Sequencer(self.engine, MemoryJournal()) if clock is None
                          else Sequencer(self.engine, MemoryJournal(), clock))
        self.hub = StreamHub(self.engine, max_buffer=max_buffer)
        self.sequencer.subscribe(self.hub.on_durable)
        self.app = Starlette(routes=build_routes(self.hub, Gate(FixedKeys()),
                                                  self.sequencer.submit))
        self.thread = LoopServerThread(self.app, limits)
        self.port = self.thread.port
        self.url = f"ws://127.0.0.1:{self.port}"

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The server's event loop, once it runs."""
        return self.thread.loop

    def start(self) -> LiveExchange:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.thread.stop()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` in the server's loop and return its result."""
        assert self.loop is not None

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def submit(self, command: Command) -> list[Event]:
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(self.sequencer.submit(command), self.loop)
        return future.result(10)

    def submit_many(self, commands: list[Command]) -> list[list[Event]]:
        """Submit a burst in one go (one group commit), waiting for all acks."""
        assert self.loop is not None

        async def run() -> list[list[Event]]:
            futures = [self.sequencer.submit_nowait(c) for c in commands]
            return [await f for f in futures]

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    # -- decimal-string helpers, like a client ----------------------------------------------

    def deposit(self, account: int, amount: str = "1000000") -> None:
        self.submit(Deposit(0, 0, account, "USDT", to_atoms(amount)))

    def mark(self, price: str, symbol: str = "BTCUSDT") -> None:
        spec = self.engine.instruments[symbol]
        self.submit(MarkPrice(0, 0, symbol, to_ticks(spec, price)))

    def order(self, account: int, side: Side, qty: str, price: str | None = None,
              symbol: str = "BTCUSDT", tif: TimeInForce = TimeInForce.GTC) -> PlaceOrder:
        spec = self.engine.instruments[symbol]
        return PlaceOrder(0, 0, account, symbol, side,
                          OrderType.LIMIT if price is not None else OrderType.MARKET,
                          to_lots(spec, qty), None if price is None else to_ticks(spec, price),
                          tif)

    def place(self, account: int, side: Side, qty: str, price: str | None = None,
              symbol: str = "BTCUSDT", tif: TimeInForce = TimeInForce.GTC) -> list[Event]:
        return self.submit(self.order(account, side, qty, price, symbol, tif))
