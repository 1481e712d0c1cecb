"""The load generator of `perpx bench api`: asyncio streams, keep-alive HTTP/1.1, HMAC each.

It runs in its own process (`python -m perpx.bench.loadgen`, a JSON job on stdin, a JSON
result on stdout) so that the server it measures has the rest of the machine. Every
connection is one client with its own API key; each request is built from bytes prepared
once (the request line, the fixed headers, the two bodies), but its timestamp and its
HMAC-SHA256 signature are fresh for every request, as a real client's are. With `pipeline`
above 1 a connection keeps that many requests in flight (HTTP/1.1 pipelining: the server
answers in order); latency is from writing a request to reading its whole answer.

`serve_trivial` is the counterpart for the client's own ceiling: a server that answers every
request with a fixed envelope and does nothing else, so the load generator is the bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

RECV_WINDOW = b"5000"
_RET_CODE = re.compile(rb'"retCode":(-?\d+)')


@dataclass(slots=True)
class Job:
    """What to send: `kind` is `order` (signed POST /v5/order/create) or `time` (GET)."""

    host: str
    port: int
    kind: str
    keys: list[tuple[str, str]]  # (api key, secret) per connection
    seconds: float
    warmup_s: float = 0.5
    pipeline: int = 1
    price: str = "65000"
    symbol: str = "BTCUSDT"


@dataclass(slots=True)
class Tally:
    """What came back while measuring."""

    done: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    codes: dict[int, int] = field(default_factory=dict)
    errors: int = 0


def _order_bodies(symbol: str, price: str) -> tuple[bytes, bytes]:
    def body(side: str) -> bytes:
        return json.dumps({"category": "linear", "symbol": symbol, "side": side,
                           "orderType": "Limit", "qty": "0.001", "price": price,
                           "timeInForce": "GTC"}, separators=(",", ":")).encode()
    return body("Buy"), body("Sell")


def request_maker(job: Job, number: int) -> Callable[[], bytes]:
    """Return a function building this connection's next request, signed afresh each time."""
    host = f"{job.host}:{job.port}".encode()
    if job.kind == "time":
        fixed = b"GET /v5/market/time HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
        return lambda: fixed
    if job.kind != "order":
        raise ValueError(f"unknown request kind {job.kind!r}")
    api_key, secret = job.keys[number]
    key_bytes = api_key.encode()
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)  # keyed once, copied per request
    bodies = _order_bodies(job.symbol, job.price)
    heads = [b"POST /v5/order/create HTTP/1.1\r\nHost: " + host
             + b"\r\nContent-Type: application/json\r\nX-BAPI-API-KEY: " + key_bytes
             + b"\r\nX-BAPI-RECV-WINDOW: " + RECV_WINDOW
             + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nX-BAPI-TIMESTAMP: "
             for body in bodies]
    state = [number % 2]  # alternate sides so the clients' orders trade with each other

    def build() -> bytes:
        side = state[0]
        state[0] = 1 - side
        body = bodies[side]
        stamp = str(time.time_ns() // 1_000_000).encode()
        signer = mac.copy()
        signer.update(stamp + key_bytes + RECV_WINDOW + body)
        return (heads[side] + stamp + b"\r\nX-BAPI-SIGN: " + signer.hexdigest().encode()
                + b"\r\n\r\n" + body)

    return build


async def _read_answer(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        raise ConnectionError(f"not an HTTP/1.1 answer: {head[:40]!r}")
    length = None
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    if length is None:
        raise ConnectionError("answer without Content-Length")
    return await reader.readexactly(length)


async def _connection(job: Job, number: int, tally: Tally, start: float, stop: float) -> None:
    build = request_maker(job, number)
    reader, writer = await asyncio.open_connection(job.host, job.port)
    sent: deque[float] = deque()
    clock = time.perf_counter
    try:
        while True:
            now = clock()
            if now >= stop:
                break
            while len(sent) < job.pipeline:
                writer.write(build())
                sent.append(clock())
            body = await _read_answer(reader)
            began = sent.popleft()
            finished = clock()
            if began >= start:
                tally.done += 1
                tally.latencies_ms.append((finished - began) * 1000.0)
                found = _RET_CODE.search(body)
                code = int(found.group(1)) if found else -1
                tally.codes[code] = tally.codes.get(code, 0) + 1
        while sent:  # drain what is in flight so the server is not cut off mid-answer
            await _read_answer(reader)
            sent.popleft()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def run(job: Job) -> dict[str, Any]:
    """Run the job; return its figures (requests done, latencies, retCodes)."""
    tally = Tally()
    start = time.perf_counter() + job.warmup_s
    stop = start + job.seconds
    results = await asyncio.gather(
        *(_connection(job, i, tally, start, stop) for i in range(len(job.keys))),
        return_exceptions=True)
    tally.errors = sum(1 for r in results if isinstance(r, BaseException))
    elapsed = max(1e-9, min(time.perf_counter(), stop) - start)
    lat = sorted(tally.latencies_ms)
    return {"requests": tally.done, "seconds": round(elapsed, 3),
            "per_s": round(tally.done / elapsed, 1),
            "p50_ms": round(percentile(lat, 0.50), 3), "p99_ms": round(percentile(lat, 0.99), 3),
            "codes": {str(k): v for k, v in sorted(tally.codes.items())},
            "connection_errors": tally.errors,
            "error": next((repr(r) for r in results if isinstance(r, BaseException)), None)}


def percentile(sorted_ms: list[float], share: float) -> float:
    """Return the `share` percentile of an ascending list (0 when empty)."""
    if not sorted_ms:
        return 0.0
    return sorted_ms[min(len(sorted_ms) - 1, int(share * len(sorted_ms)))]


class _Trivial(asyncio.Protocol):
    """Answer each HTTP/1.1 request with one fixed envelope; parse only the framing."""

    ANSWER = (b'{"retCode":0,"retMsg":"OK","result":{"orderId":"1","orderLinkId":""},'
              b'"retExtInfo":{},"time":0}')
    REPLY = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
             + str(len(ANSWER)).encode() + b"\r\n\r\n" + ANSWER)

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies = 0
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15:head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0
                              else len(head)]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                break
            self.buffer = self.buffer[end + 4 + length:]
            replies += 1
        if replies and self.transport is not None:
            self.transport.write(self.REPLY * replies)


async def serve_trivial(port: int) -> None:
    """Serve the fixed answer on 127.0.0.1:`port` until cancelled."""
    server = await asyncio.get_running_loop().create_server(_Trivial, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def _event_loop_runner() -> Callable[[Any], Any]:
    try:
        import uvloop
    except ImportError:  # the plain loop works; the figures say which one ran
        return asyncio.run
    return uvloop.run


def main(argv: list[str]) -> None:
    """`python -m perpx.bench.loadgen` (job on stdin) or `... trivial PORT`."""
    runner = _event_loop_runner()
    if argv[:1] == ["trivial"]:
        runner(serve_trivial(int(argv[1])))
        return
    spec = json.loads(sys.stdin.read())
    job = Job(**{**spec, "keys": [tuple(pair) for pair in spec["keys"]]})
    print(json.dumps(runner(run(job))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
