"""The API bench's ceilings without HTTP: what the single writer's process can do at most.

`perpx bench api` measures orders end to end over loopback. To read that figure, two runs in
one process (uvloop, the same SQLite journal, history tables, read models and streams as
`perpx serve`, the same order flow and concurrency) peel the HTTP stack away:

- `dispatcher`: the REST dispatcher called directly with a signed body and headers: auth
  (HMAC), rate limit, parameters, the command, the sequencer, the envelope. This is what the
  sequencer process would still do per order if other processes took the HTTP parsing;
- `writer`: `ExchangeService.submit(PlaceOrder)` alone: stamp, engine, group-committed
  journal, projections (history tables, tickers, klines, streams). No API work at all: the
  ceiling of any design that keeps one writer process, however many front ends feed it.

Each client waits for its answer before sending the next, as an HTTP client does.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

from perpx.api.app import Dispatcher
from perpx.api.keys import KeyStore
from perpx.api.ratelimit import RateLimiter
from perpx.bench.loadgen import percentile
from perpx.convert import format_ticks, to_lots, to_ticks
from perpx.core.commands import PlaceOrder
from perpx.core.enums import OrderType, Side, TimeInForce
from perpx.core.events import OrderAccepted
from perpx.instruments import load_instruments
from perpx.service import ExchangeService, open_service_journal
from perpx.store.history_sqlite import SqliteHistory

SYMBOL = "BTCUSDT"
Step = Callable[[int, int], Awaitable[bool]]  # (client, request number) -> accepted?


async def _drive(clients: int, seconds: float, step: Step) -> dict[str, Any]:
    latencies: list[float] = []
    done = [0, 0]  # accepted, refused
    clock = time.perf_counter
    warm_until = clock() + 0.3
    stop = warm_until + seconds

    async def client(number: int) -> None:
        count = 0
        while True:
            began = clock()
            if began >= stop:
                return
            accepted = await step(number, count)
            count += 1
            if began >= warm_until:
                latencies.append((clock() - began) * 1000.0)
                done[0 if accepted else 1] += 1

    await asyncio.gather(*(client(i) for i in range(clients)))
    latencies.sort()
    total = done[0] + done[1]
    return {"per_s": round(total / seconds, 1), "p50_ms": round(percentile(latencies, 0.5), 3),
            "p99_ms": round(percentile(latencies, 0.99), 3), "refused": done[1]}


async def _measure(kind: str, clients: int, seconds: float, folder: Path) -> dict[str, Any]:
    specs = load_instruments()
    spec = next(s for s in specs if s.symbol == SYMBOL)
    service = ExchangeService(specs, open_service_journal(folder),
                              history=SqliteHistory(folder / "history.db"), maker=False,
                              feed_interval_s=3600)
    keys = KeyStore(None)
    made = [keys.create(demo_funds="100000", rate_limit=1_000_000) for _ in range(clients)]
    await service.start()  # one feed step: index and mark prices
    try:
        for key in made:
            await service.ensure_funded(key.account_id, key.demo_funds)
        mark = service.engine.mark_price.get(SYMBOL) or service.engine.index_price[SYMBOL]
        if kind == "writer":
            qty = to_lots(spec, "0.001")

            async def submit(number: int, count: int) -> bool:
                side = Side.BUY if (number + count) % 2 else Side.SELL
                events = await service.submit(PlaceOrder(
                    0, 0, made[number].account_id, SYMBOL, side, OrderType.LIMIT, qty, mark,
                    TimeInForce.GTC))
                return any(isinstance(e, OrderAccepted) for e in events)

            return await _drive(clients, seconds, submit)
        dispatcher = Dispatcher(service, keys, RateLimiter())
        price = format_ticks(spec, mark)
        assert to_ticks(spec, price) == mark
        bodies = [msgspec.json.encode({"category": "linear", "symbol": SYMBOL, "side": side,
                                       "orderType": "Limit", "qty": "0.001", "price": price,
                                       "timeInForce": "GTC"}) for side in ("Sell", "Buy")]
        decoder = msgspec.json.Decoder()

        async def dispatch(number: int, count: int) -> bool:
            key = made[number]
            body = bodies[(number + count) % 2]
            stamp = str(time.time_ns() // 1_000_000)
            sign = hmac.new(key.secret.encode(), (stamp + key.api_key + "5000").encode() + body,
                            hashlib.sha256).hexdigest()
            headers = {"x-bapi-api-key": key.api_key, "x-bapi-timestamp": stamp,
                       "x-bapi-recv-window": "5000", "x-bapi-sign": sign}
            _, reply, _ = await dispatcher("POST", "/v5/order/create", body, headers)
            return bool(decoder.decode(reply)["retCode"] == 0)

        return await _drive(clients, seconds, dispatch)
    finally:
        await service.close()
        keys.close()


def measure(kind: str, clients: int, seconds: float) -> dict[str, Any]:
    """Run one rung (`dispatcher` or `writer`) on a fresh data folder; return its figures."""
    from perpx.api.server import run

    if kind not in ("dispatcher", "writer"):
        raise ValueError(f"unknown rung {kind!r}")
    with tempfile.TemporaryDirectory(prefix="perpx-ladder-") as folder:
        result: dict[str, Any] = run(_measure(kind, clients, seconds, Path(folder)))
        return result
