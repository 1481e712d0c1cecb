"""GET /v5/market/*kline and /v5/market/funding/history read the tables as the models did.

A service trades for eleven hours of its (stepped) clock on each backend: index and mark
moves, the maker's quotes, a trader's market orders, funding settlements. Every kline variant
and the funding history, asked through the REST dispatcher with several windows, must answer
exactly what the full in-memory models fed with the whole journal answer, before and after
a restart.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from perpx.api.app import Dispatcher
from perpx.api.keys import KeyStore
from perpx.api.ratelimit import RateLimiter
from perpx.convert import format_atoms, format_lots, format_rate, format_ticks
from perpx.core.commands import PlaceOrder
from perpx.core.engine import Engine
from perpx.core.enums import OrderType, Side
from perpx.instruments import load_instruments
from perpx.readmodels import FundingHistory, Klines, PriceSource
from perpx.service import ExchangeService
from perpx.store import open_history, open_journal

T0 = 1_700_006_400_000
STEP_MS = 7 * 60_000
PATHS = {PriceSource.LAST: "kline", PriceSource.MARK: "mark-price-kline",
         PriceSource.INDEX: "index-price-kline", PriceSource.PREMIUM_INDEX:
         "premium-index-price-kline"}
QUERIES = ["", "&limit=3", "&limit=1000", f"&start={T0 + 3_600_000}&limit=4",
           f"&end={T0 + 5 * 3_600_000}&limit=5", "&start=9999&limit=1",
           f"&start={T0 + 3_600_000}&end={T0 + 4 * 3_600_000}"]


class Clock:
    """A service clock the test steps."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def _params(query: str) -> dict[str, int]:
    out = {}
    for part in query.split("&"):
        if part:
            key, value = part.split("=")
            out[key] = int(value)
    return out


def _expected(location: str, now_ms: int) -> dict[str, Any]:
    """The answers of the full in-memory models fed with every event of the journal."""
    specs = load_instruments()
    spec = next(s for s in specs if s.symbol == "BTCUSDT")
    klines, funding, engine = Klines(specs), FundingHistory(specs), Engine(specs)
    journal = open_journal(location, readonly=True)
    for command in journal.read(1):
        for event in engine.apply(command):
            klines.apply(event)
            funding.apply(event)
    journal.close()
    klines.now_ms = max(klines.now_ms, now_ms)
    out: dict[str, Any] = {}
    for source, path in PATHS.items():
        for interval in ("1", "15", "60", "D"):
            for query in QUERIES:
                p = _params(query)
                rows = []
                for c in klines.candles("BTCUSDT", interval, source=source,
                                        start_ms=p.get("start"), end_ms=p.get("end"),
                                        limit=p.get("limit", 200)):
                    fmt = (format_rate if source is PriceSource.PREMIUM_INDEX
                           else lambda v: format_ticks(spec, v))
                    row = [str(c.start_ms), *(fmt(v) for v in (c.open, c.high, c.low, c.close))]
                    if source is PriceSource.LAST:
                        row += [format_lots(spec, c.volume_lots), format_atoms(c.turnover_atoms)]
                    rows.append(row)
                out[f"/v5/market/{path}?interval={interval}{query}"] = rows
    for query in ["", "&limit=1", f"&startTime={T0}&endTime={T0 + 9 * 3_600_000}&limit=2"]:
        p = _params(query)
        out[f"/v5/market/funding/history?{query}"] = [
            {"symbol": r.symbol, "fundingRate": format_rate(r.funding_rate),
             "fundingRateTimestamp": str(r.funding_rate_timestamp_ms)}
            for r in funding.rates("BTCUSDT", start_ms=p.get("startTime"),
                                   end_ms=p.get("endTime"), limit=p.get("limit", 200))]
    return out


async def _answers(service: ExchangeService, paths: list[str]) -> dict[str, Any]:
    dispatcher = Dispatcher(service, KeyStore(None), RateLimiter())
    out = {}
    for key in paths:
        path, query = key.split("?")
        _, body, _ = await dispatcher("GET", path, f"category=linear&symbol=BTCUSDT&{query}"
                                      .replace("&&", "&").encode(), {})
        reply = msgspec.json.decode(body)
        assert reply["retCode"] == 0, (key, reply)
        out[key] = reply["result"]["list"]
    return out


def test_market_history_endpoints_answer_as_the_in_memory_models(location: str) -> None:
    clock = Clock()

    async def trade() -> dict[str, Any]:
        service = ExchangeService(load_instruments(), open_journal(location),
                                  history=open_history(location), clock=clock,
                                  feed_interval_s=3600)
        await service.start()
        await service.ensure_funded(5001, "100000")
        for step in range(95):  # 11 hours: funding settles at 08:00
            clock.now += STEP_MS
            await service.step()
            if step % 3 == 0:
                side = Side.BUY if step % 2 else Side.SELL
                await service.submit(PlaceOrder(0, 0, 5001, "BTCUSDT", side,
                                                OrderType.MARKET, 1 + step % 4))
        clock.now += 2 * STEP_MS  # quiet periods since the last update read flat
        answers = await _answers(service, list(expected))
        await service.close()
        return answers

    async def restart() -> dict[str, Any]:
        service = ExchangeService(load_instruments(), open_journal(location),
                                  history=open_history(location), clock=clock, maker=False)
        answers = await _answers(service, list(expected))
        await service.close()
        return answers

    expected = {key: None for key in _expected_keys()}
    live = asyncio.run(trade())
    expected = _expected(location, clock.now)
    assert any(expected[key] for key in expected if "funding" in key)
    assert len(expected[f"/v5/market/kline?interval=1{QUERIES[2]}"]) > 20
    for key, rows in expected.items():
        assert live[key] == rows, key
    again = asyncio.run(restart())
    for key, rows in expected.items():
        assert again[key] == rows, key


def _expected_keys() -> list[str]:
    keys = [f"/v5/market/{path}?interval={interval}{query}" for path in PATHS.values()
            for interval in ("1", "15", "60", "D") for query in QUERIES]
    return keys + [f"/v5/market/funding/history?{query}" for query in
                   ["", "&limit=1", f"&startTime={T0}&endTime={T0 + 9 * 3_600_000}&limit=2"]]
