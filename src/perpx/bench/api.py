"""`perpx bench api`: signed orders per second end to end over loopback, with latencies.

A `perpx serve` subprocess (no market maker, in-memory journal) serves a fresh data folder;
`clients` concurrent aiohttp sessions (keep-alive), each with its own API key and account,
sign every request (HMAC-SHA256 over timestamp + key + recv window + body) and send limit
orders that alternate buy and sell at the mark, so they trade with each other: the engine
matches, settles fees and positions, journals, and the history tables record the fills.

The baseline, measured in the same run with the same clients, is an unsigned
`GET /v5/market/time`: the HTTP stack and event loop alone. The last line is JSON with
`orders_per_s`, `p50_ms`, `p99_ms` (and `ws_msgs_per_s`: null, measured by the WebSocket
benchmark when it lands).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from perpx.api.keys import KeyStore


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _percentile(sorted_ms: list[float], share: float) -> float:
    if not sorted_ms:
        return 0.0
    return sorted_ms[min(len(sorted_ms) - 1, int(share * len(sorted_ms)))]


async def _load(url: str, keys: list[tuple[str, str]], seconds: float, signed: bool,
                price: str) -> tuple[int, list[float], dict[int, int]]:
    done = 0
    latencies: list[float] = []
    codes: dict[int, int] = {}
    deadline = time.perf_counter() + seconds

    async def client(number: int, api_key: str, secret: str) -> None:
        nonlocal done
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            side = "Buy" if number % 2 else "Sell"
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                if signed:
                    body = json.dumps({"category": "linear", "symbol": "BTCUSDT", "side": side,
                                       "orderType": "Limit", "qty": "0.001", "price": price,
                                       "timeInForce": "GTC"}, separators=(",", ":"))
                    stamp = str(time.time_ns() // 1_000_000)
                    sign = hmac.new(secret.encode(), (stamp + api_key + "5000" + body).encode(),
                                    hashlib.sha256).hexdigest()
                    headers = {"X-BAPI-API-KEY": api_key, "X-BAPI-TIMESTAMP": stamp,
                               "X-BAPI-RECV-WINDOW": "5000", "X-BAPI-SIGN": sign,
                               "Content-Type": "application/json"}
                    request = session.post(url + "/v5/order/create", data=body, headers=headers)
                    side = "Sell" if side == "Buy" else "Buy"
                else:
                    request = session.get(url + "/v5/market/time")
                async with request as reply:
                    answer = await reply.json(content_type=None)
                latencies.append((time.perf_counter() - started) * 1000)
                code = answer["retCode"]
                codes[code] = codes.get(code, 0) + 1
                done += 1

    await asyncio.gather(*(client(i, k, s) for i, (k, s) in enumerate(keys)))
    return done, latencies, codes


def bench_api(clients: int = 64, seconds: float = 5.0,
              echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Start a server, measure the baseline and signed orders; print figures, JSON last."""
    with tempfile.TemporaryDirectory(prefix="perpx-bench-") as folder:
        data = Path(folder)
        store = KeyStore(data)
        keys = [store.create(demo_funds="100000", rate_limit=1_000_000)
                for _ in range(clients)]
        store.close()
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "perpx.cli", "serve", "--port", str(port), "--data",
             str(data), "--no-maker"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        url = f"http://127.0.0.1:{port}"
        try:
            price = asyncio.run(_wait_ready(url))
            pairs = [(k.api_key, k.secret) for k in keys]
            base_n, base_lat, _ = asyncio.run(_load(url, pairs, seconds, False, price))
            n, lat, codes = asyncio.run(_load(url, pairs, seconds, True, price))
        finally:
            server.terminate()
            server.wait(timeout=30)
    lat.sort()
    base_lat.sort()
    result = {
        "clients": clients, "seconds": seconds,
        "orders_per_s": round(n / seconds, 1),
        "p50_ms": round(_percentile(lat, 0.50), 3), "p99_ms": round(_percentile(lat, 0.99), 3),
        "order_retcodes": {str(k): v for k, v in sorted(codes.items())},
        "baseline_time_req_per_s": round(base_n / seconds, 1),
        "baseline_p50_ms": round(_percentile(base_lat, 0.50), 3),
        "baseline_p99_ms": round(_percentile(base_lat, 0.99), 3),
        "ratio_to_baseline": round(n / base_n, 3) if base_n else None,
        "ws_msgs_per_s": None,
    }
    echo(f"baseline GET /v5/market/time: {result['baseline_time_req_per_s']:,} req/s, "
         f"p50 {result['baseline_p50_ms']} ms, p99 {result['baseline_p99_ms']} ms")
    echo(f"signed POST /v5/order/create: {result['orders_per_s']:,} orders/s, "
         f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms "
         f"({clients} clients, retCodes {result['order_retcodes']})")
    echo(f"ratio to baseline: {result['ratio_to_baseline']}")
    echo(json.dumps(result))
    return result


async def _wait_ready(url: str) -> str:
    """Wait for the server; return a limit price at the BTCUSDT mark."""
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url + "/v5/market/tickers?category=linear&symbol=BTCUSDT"
                                       ) as reply:
                    ticker = (await reply.json())["result"]["list"][0]
                    if ticker["markPrice"]:
                        return str(ticker["markPrice"])
            except (aiohttp.ClientError, KeyError, IndexError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            await asyncio.sleep(0.2)
