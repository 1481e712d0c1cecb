"""Where a signed `POST /v5/order/create` spends the serving process's CPU (issue #15).

`perpx bench api` gives orders/s end to end, which on a shared 2-core machine swings with
everyone else's load. These figures are steadier, and say where the time goes:

- `cpu`: a fresh `perpx serve --no-maker` under the bench's load generator (64 signed
  clients, then the unsigned GET baseline): the server's CPU time (all threads, from /proc)
  per signed order and per GET, and per thread (the event loop vs the journal's and the
  history's threads). CPU time, unlike orders/s, does not count time spent waiting for the
  cores.
- `profile OUT`: the same server under cProfile, switched on only while the signed load runs
  (SIGUSR1/SIGUSR2), written to OUT; prints the event loop thread's time by package.
- `dispatch`: CPU µs per request through the API layer alone, in process: the ASGI app
  (`RestApp`) called with a signed scope and body, authentication, rate limit, parameters,
  translation, envelope, headers, with a stub service that accepts every order at once (no
  engine, journal or read side).

- `http` / `http-once`: the same, over HTTP: a keep-alive connection's request bytes fed
  to the server's own uvicorn protocol (httptools, the request clock) over a transport that
  keeps the replies, on the server's loop; `http-once` for valgrind as `dispatch-once`
  (count two request numbers: the difference over the difference is per request).
- `params-once` / `translate-once`: the order's JSON body into `Params`, and then into its
  `PlaceOrder` (`perpx.bybit.translate`), for valgrind as `dispatch-once`.

- `dispatch-once`: the same requests run once, synchronously (the stub never suspends),
  inside `any(map(...))`, for valgrind to count the API layer's instructions alone:
  `valgrind --tool=callgrind --collect-atstart=no --toggle-collect=builtin_any python
  benchmarks/bench_api_path.py dispatch-once --requests 3000` (`Ir` / requests).

Measurement only, nothing asserted. One JSON line last.
Run: `PYTHONPATH=src .venv/bin/python benchmarks/bench_api_path.py cpu` (or `profile OUT`,
`dispatch`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import hmac
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from perpx.bench.api import _loadgen, _new_keys, _wait_ready
from perpx.bench.procs import free_port, stop

_TICK = os.sysconf("SC_CLK_TCK")
# Run `perpx serve` with cProfile switched on by SIGUSR1 and dumped by SIGUSR2.
_PROFILED_SERVE = """
import cProfile, signal, sys
profile, out = cProfile.Profile(), sys.argv[1]
signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
def dump(*_):
    profile.disable()
    profile.dump_stats(out)
signal.signal(signal.SIGUSR2, dump)
sys.argv = ["perpx", "serve", *sys.argv[2:]]
from perpx.cli import main
main()
"""
_GROUPS = ("perpx/api/ws", "perpx/api/", "perpx/bybit", "perpx/convert", "perpx/core",
           "perpx/readmodels", "perpx/store", "perpx/readside", "perpx/durable",
           "perpx/sequencer", "perpx/service", "uvicorn", "asyncio", "cryptography")


def _threads(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of `pid`."""
    found = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{task}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        found[task] = (int(fields[11]) + int(fields[12])) / _TICK
    return found


def _served(argv_prefix: list[str], seconds: float, clients: int,
            during: Any) -> dict[str, Any]:
    """Start `python ARGV_PREFIX --port --data --no-maker` and run `during` against it."""
    with tempfile.TemporaryDirectory(prefix="perpx-path-") as folder:
        data = Path(folder)
        pairs = _new_keys(data, clients)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, *argv_prefix, "--port", str(port), "--data", str(data),
             "--no-maker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            price = _wait_ready(f"http://127.0.0.1:{port}", server)
            job = {"host": "127.0.0.1", "port": port, "keys": pairs, "seconds": seconds,
                   "pipeline": 1, "price": price}
            _loadgen({**job, "kind": "order", "seconds": 1.0})  # warm: keys, accounts, books
            return dict(during(server, job))
        finally:
            stop(server)


def cpu(seconds: float, clients: int) -> dict[str, Any]:
    """The server's CPU µs per signed order and per GET, and per thread for the orders."""
    def during(server: subprocess.Popen[bytes], job: dict[str, Any]) -> dict[str, Any]:
        span = seconds + 0.5  # the load generator's warm-up is served too
        before = _threads(server.pid)
        base = _loadgen({**job, "kind": "time"})
        middle = _threads(server.pid)
        orders = _loadgen({**job, "kind": "order"})
        after = _threads(server.pid)
        count = orders["per_s"] * span
        per_thread = sorted(((after[t] - middle.get(t, 0.0)) / count * 1e6 for t in after),
                            reverse=True)
        return {"orders_per_s": orders["per_s"], "p50_ms": orders["p50_ms"],
                "p99_ms": orders["p99_ms"], "get_per_s": base["per_s"],
                "ratio_to_baseline": round(orders["per_s"] / base["per_s"], 3),
                "cpu_us_per_order": round(sum(per_thread), 1),
                "cpu_us_per_order_by_thread": [round(x, 1) for x in per_thread if x >= 0.5],
                "cpu_us_per_get": round((sum(middle.values()) - sum(before.values()))
                                        / (base["per_s"] * span) * 1e6, 1),
                "order_codes": orders["codes"]}
    return _served(["-m", "perpx.cli", "serve"], seconds, clients, during)


def profile(out: str, seconds: float, clients: int) -> dict[str, Any]:
    """cProfile of the serving process while the signed load runs; time by package."""
    def during(server: subprocess.Popen[bytes], job: dict[str, Any]) -> dict[str, Any]:
        server.send_signal(signal.SIGUSR1)
        orders = _loadgen({**job, "kind": "order"})
        server.send_signal(signal.SIGUSR2)
        time.sleep(1.0)
        return {"orders_per_s": orders["per_s"]}
    with tempfile.TemporaryDirectory(prefix="perpx-path-") as folder:
        script = Path(folder) / "serve_profiled.py"
        script.write_text(_PROFILED_SERVE)
        result = _served([str(script), out], seconds, clients, during)
    stats = pstats.Stats(out)
    groups: collections.Counter[str] = collections.Counter()
    for (filename, _, name), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        group = next((g for g in _GROUPS if g in filename), None)
        groups[group or (f"builtin {name[:40]}" if filename == "~" else
                         filename.rsplit("/", 1)[-1])] += own
    total = sum(groups.values())
    result["share_by_package"] = {k: round(v / total, 3) for k, v in groups.most_common(14)}
    for name, share in result["share_by_package"].items():
        print(f"{share:6.1%}  {name}")
    return result


class _Stub:
    """A venue that accepts every order at once (no engine, journal or read side)."""

    def __init__(self) -> None:
        from perpx.core.enums import SmpType
        from perpx.core.events import OrderAccepted
        from perpx.instruments import load_instruments

        self.specs = {s.symbol: s for s in load_instruments()}
        self.accepted, self.smp_none = OrderAccepted, SmpType.NONE
        self.orders = 0
        self.frozen_ms = 0  # the `-once` modes: the clock stands still (valgrind is slow)

    def now_ms(self) -> int:
        return self.frozen_ms or time.time_ns() // 1_000_000

    async def ensure_funded(self, account_id: int, funds: str) -> None:
        return None

    async def caught_up(self, account_id: int) -> None:
        return None

    async def submit(self, command: Any, request_id: bytes | None = None) -> list[Any]:
        self.orders += 1
        return [self.accepted(command.seq, command.ts_ms, self.orders, command.account_id,
                              command.symbol, command.side, command.order_type,
                              command.price_ticks or 0, command.qty_lots,
                              command.time_in_force, False, False, 0,
                              command.order_link_id, self.smp_none)]


_ORDER = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit",
          "qty": "0.001", "price": "65000", "timeInForce": "GTC"}


class _Signed:
    """The stubbed app and 64 keys that sign order creates (the signing is not measured)."""

    def __init__(self) -> None:
        import msgspec
        from starlette.applications import Starlette

        from perpx.api.app import Dispatcher, RestApp
        from perpx.api.keys import KeyStore
        from perpx.api.ratelimit import RateLimiter

        self.folder = tempfile.TemporaryDirectory(prefix="perpx-path-")
        self.maker = KeyStore(self.folder.name)
        self.server_keys = KeyStore(self.folder.name)  # the server's own
        self.made = [self.maker.create(demo_funds="100000", rate_limit=1_000_000)
                     for _ in range(64)]
        self.stub = _Stub()
        self.app = RestApp(Dispatcher(self.stub, self.server_keys,  # type: ignore[arg-type]
                                      RateLimiter()), Starlette(), [])
        self.body = msgspec.json.encode(_ORDER)

    def once(self) -> None:
        """For valgrind (~50x slower): a still clock, and a key cache that does not expire."""
        import perpx.api.keys

        # Slowed down ~50x by valgrind, the key cache would look at the database far more
        # often per request than at full speed: the same work per request on both sides.
        perpx.api.keys.CACHE_TTL_S = 3600.0
        self.stub.frozen_ms = time.time_ns() // 1_000_000

    def headers(self, number: int) -> list[tuple[bytes, bytes]]:
        key = self.made[number % len(self.made)]
        stamp = str(self.stub.now_ms())
        sign = hmac.new(key.secret.encode(),
                        (stamp + key.api_key + "5000").encode() + self.body,
                        hashlib.sha256).hexdigest()
        return [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                (b"x-bapi-api-key", key.api_key.encode()), (b"x-bapi-recv-window", b"5000"),
                (b"content-length", str(len(self.body)).encode()),
                (b"x-bapi-timestamp", stamp.encode()), (b"x-bapi-sign", sign.encode())]

    def close(self) -> None:
        self.maker.close()
        self.server_keys.close()
        self.folder.cleanup()


def dispatch(requests: int, rounds: int) -> dict[str, Any]:
    """CPU µs per signed order create through `RestApp`, the service stubbed."""
    signed = _Signed()
    app, body = signed.app, signed.body
    replies: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            replies.append(message["body"])

    def scope(number: int) -> dict[str, Any]:
        return {"type": "http", "method": "POST", "path": "/v5/order/create",
                "query_string": b"", "headers": signed.headers(number),
                "client": ("127.0.0.1", 40000)}

    if rounds == 0:  # `dispatch-once`: the requests once, inside `any(map(...))`
        signed.once()
        scopes = [scope(i) for i in range(requests)]

        def drive(each: dict[str, Any]) -> bool:
            # The stub service never suspends, so one `send` runs a request to its end.
            request = app(each, receive, send)
            try:
                request.send(None)
            except StopIteration:
                return False
            raise RuntimeError("a request suspended")

        try:
            any(map(drive, scopes))  # the only `any` while it runs: valgrind's toggle
        finally:
            signed.close()
        return {"requests": requests, "answered": len(replies),
                "refused": sum(b'"retCode":0,' not in reply for reply in replies)}

    async def main() -> float:
        best = float("inf")
        for _ in range(rounds):
            scopes = [scope(i) for i in range(requests)]  # signing is the client's, not timed
            began = time.process_time()
            for each in scopes:
                await app(each, receive, send)
            best = min(best, (time.process_time() - began) / requests * 1e6)
        return best

    try:
        best = asyncio.run(main())
    finally:
        signed.close()
    refused = sum(b'"retCode":0,' not in reply for reply in replies)
    return {"api_cpu_us_per_order": round(best, 1), "requests": requests, "rounds": rounds,
            "refused": refused}


class _Transport:
    """A connection's transport that keeps what is written (uvicorn's protocol's peer)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.protocol: Any = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000),
                "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def get_protocol(self) -> Any:
        return self.protocol

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol


def http(requests: int, rounds: int) -> dict[str, Any]:
    """CPU µs (or with `rounds` 0, one pass for valgrind) per signed order create over HTTP.

    The bytes of a keep-alive connection's requests fed to the server's own uvicorn
    protocol (`perpx.api.protocol`, httptools) over a transport that keeps the replies, on
    the server's event loop: HTTP parsing, uvicorn's request cycle and task, the whole API
    layer and the response's bytes, with the stub service. What this leaves out is the
    kernel's sockets and the venue (a gateway's writer and follower).
    """
    import uvicorn
    from uvicorn.server import ServerState

    from perpx.api.limits import ConnectionGuard, Limits
    from perpx.api.server import _config, event_loop_factory

    signed = _Signed()
    limits = Limits()
    guard = ConnectionGuard(limits.max_connections_per_address, limits.connection_cap())
    config: uvicorn.Config = _config(signed.app, limits, guard)
    config.load()
    state = ServerState()
    state.default_headers = [(b"date", b"Mon, 07 Dec 2026 14:00:00 GMT"),
                             *config.encoded_headers]
    loop = event_loop_factory()()
    asyncio.set_event_loop(loop)
    transport = _Transport()
    protocol = config.http_protocol_class(config=config, server_state=state, app_state={},
                                          _loop=loop)
    protocol.connection_made(transport)

    def wire(number: int) -> bytes:
        head = [b"POST /v5/order/create HTTP/1.1"]
        head += [name + b": " + value for name, value in signed.headers(number)]
        return b"\r\n".join(head) + b"\r\n\r\n" + signed.body

    async def serve(wires: list[bytes]) -> None:
        for each in wires:
            protocol.data_received(each)
            cycle = protocol.cycle  # the request's (none is pipelined)
            while not cycle.response_complete:  # in one write or two (uvicorn's `send`)
                await asyncio.sleep(0)

    def answered() -> int:
        return b"".join(transport.written).count(b"HTTP/1.1 ")

    def refused() -> int:
        return answered() - b"".join(transport.written).count(b'"retCode":0,')

    try:
        if rounds == 0:  # `http-once`: the requests once, inside `any(map(...))`
            signed.once()
            wires = [wire(i) for i in range(requests)]
            any(map(loop.run_until_complete, [serve(wires)]))  # valgrind's toggle
            return {"requests": requests, "answered": answered(),
                    "refused": refused()}
        best = float("inf")
        for _ in range(rounds):
            wires = [wire(i) for i in range(requests)]
            began = time.process_time()
            loop.run_until_complete(serve(wires))
            best = min(best, (time.process_time() - began) / requests * 1e6)
        return {"http_cpu_us_per_order": round(best, 1), "requests": requests,
                "rounds": rounds, "refused": refused()}
    finally:
        protocol.connection_lost(None)
        loop.close()
        signed.close()


def translate_once(requests: int, parse_only: bool) -> dict[str, Any]:
    """An order create's parameters (`_params`) and command (`translate.place`), once each.

    For valgrind as `dispatch-once`: what of the API layer's instructions per order are the
    JSON body's decoding and the order's parsing (`perpx.bybit`, `perpx.convert`).
    """
    import msgspec

    from perpx.api.app import _params
    from perpx.bybit import translate
    from perpx.instruments import load_instruments

    specs = {s.symbol: s for s in load_instruments()}
    body = msgspec.json.encode(_ORDER)

    def parse(_: int) -> bool:
        params = _params("POST", body)
        if not parse_only:
            translate.place(1001, params, translate.category_specs(params, specs))
        return False

    any(map(parse, range(requests)))  # valgrind's toggle
    return {"requests": requests, "parse_only": parse_only}


def run() -> None:
    """Parse the command line, measure, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["cpu", "profile", "dispatch", "dispatch-once",
                                         "http", "http-once", "params-once",
                                         "translate-once"])
    parser.add_argument("out", nargs="?", default="api-path.prof")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    if args.mode == "cpu":
        result = cpu(args.seconds, args.clients)
    elif args.mode == "profile":
        result = profile(str(Path(args.out).resolve()), args.seconds, args.clients)
    elif args.mode == "dispatch-once":
        result = dispatch(args.requests, 0)
    elif args.mode == "http":
        result = http(args.requests, args.rounds)
    elif args.mode == "http-once":
        result = http(args.requests, 0)
    elif args.mode in ("params-once", "translate-once"):
        result = translate_once(args.requests, args.mode == "params-once")
    else:
        result = dispatch(args.requests, args.rounds)
    print(json.dumps({"bench": "api_path", "mode": args.mode, **result}))


if __name__ == "__main__":
    run()
