"""`perpx bench api`: signed orders per second end to end over loopback, with latencies.

Three processes: the exchange (`perpx serve --no-maker` on a fresh data folder, its SQLite
journal durable before every acknowledgement, the history tables recording every fill), the
load generator (`perpx.bench.loadgen`: raw asyncio streams, keep-alive HTTP/1.1, a fresh
timestamp and HMAC-SHA256 signature on every request), and this one, which only starts the
other two and reads their results. Each of `clients` connections has its own API key and
account and sends limit orders that alternate buy and sell at the mark, so they trade with
each other: the engine matches, settles fees and positions, journals, and the history
tables and streams record the fills.

Figures, in one run:
- the load generator's own ceiling: the same signed requests against a trivial server that
  answers a fixed envelope (`loadgen trivial`), so the rest can be read against it;
- the baseline: unsigned `GET /v5/market/time` against the exchange (HTTP stack and loop);
- signed `POST /v5/order/create`: orders/s, p50 and p99 latency, and the ratio to both;
- the single writer alone (`perpx.bench.ladder`): `ExchangeService.submit` in process with
  the same flow and concurrency, no HTTP: the ceiling of any front end;
- `ws_msgs_per_s`: the WebSocket fan-out of `perpx.bench.ws` (unless `ws_subscribers` is 0);
- with `idle` above 0, the same signed orders again while `idle` connections that never
  send a byte (`perpx.bench.idle`, a fourth process, at most `idle_per_address` from each
  loopback source address) hold descriptors: the server's RSS and descriptors before, with
  and after them, orders/s and p50/p99 under them, how many were accepted, refused by the
  connection caps, and closed by the server's request timeout (and after how long).

- with `gateways` (e.g. ``[1, 2]``), for each N the same baseline GET and signed orders
  against `perpx serve --gateways N` (the writer serving no HTTP, N API gateway processes on
  the port with SO_REUSEPORT, commands over the Unix command socket, reads from each
  gateway's follower of the journal), on a fresh data folder, and the RSS of the writer and
  of each gateway after the orders.

The last line is JSON with `orders_per_s`, `p50_ms`, `p99_ms` and `ws_msgs_per_s` (and the
`idle_*` and `server_*` figures with `idle`; `server_rss_mb` is the single process's RSS
after its orders, `server_cpu` its CPU per second during them and `server_cpu_us_per_order`
per order; with `gateways`, `gateways_N_*` for each N).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perpx.api.keys import KeyStore
from perpx.bench.procs import cpu_s as _cpu_s
from perpx.bench.procs import free_port as _free_port
from perpx.bench.procs import server_memory as _server_memory
from perpx.bench.procs import start as _start
from perpx.bench.procs import stop as _stop


def _loadgen(job: dict[str, Any]) -> dict[str, Any]:
    """Run one load in a separate process; return its JSON figures."""
    done = subprocess.run([sys.executable, "-m", "perpx.bench.loadgen"],
                          input=json.dumps(job), capture_output=True, text=True, check=False,
                          timeout=job["seconds"] + 120)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"the load generator failed: {done.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if figures["connection_errors"]:
        raise RuntimeError(f"the load generator lost connections: {figures['error']}")
    return figures


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> str:
    """Wait for the exchange; return a limit price at the BTCUSDT mark."""
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError("the server exited: "
                               + (process.stderr.read() if process.stderr else b"").decode())
        try:
            with urllib.request.urlopen(url + "/v5/market/tickers?category=linear&symbol="
                                        "BTCUSDT", timeout=5) as reply:
                ticker = json.loads(reply.read())["result"]["list"][0]
                if ticker["markPrice"]:
                    return str(ticker["markPrice"])
        except (OSError, urllib.error.URLError, KeyError, IndexError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.2)


def _under_idle(job: dict[str, Any], server: subprocess.Popen[bytes], idle: int,
                per_address: int) -> dict[str, Any]:
    """Signed orders while `idle` silent connections are held; the server's figures."""
    before = _server_memory(server.pid)
    holder = subprocess.Popen([sys.executable, "-m", "perpx.bench.idle"], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.write(json.dumps({"host": job["host"], "port": job["port"], "count": idle,
                                   "per_address": per_address}))
    holder.stdin.close()
    try:
        if not holder.stdout.readline().strip():  # every idle connection is open (or refused)
            raise RuntimeError("the idle connections failed: "
                               + (holder.stderr.read() if holder.stderr else ""))
        held = _server_memory(server.pid)
        orders = _loadgen({**job, "kind": "order"})
        loaded = _server_memory(server.pid)
        out = holder.stdout.read()  # ends when every idle connection is closed (or held)
        if holder.wait(timeout=120) != 0:
            raise RuntimeError("the idle connections failed: "
                               + (holder.stderr.read()[-2000:] if holder.stderr else ""))
    finally:
        if holder.poll() is None:
            _stop(holder)
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    after = _server_memory(server.pid)
    return {
        "idle": idle, "idle_per_address": per_address,
        "idle_accepted": figures["accepted"], "idle_refused": figures["refused"],
        "idle_connect_errors": figures["connect_errors"],
        "idle_closed_by_timeout": figures["closed_by_server"],
        "idle_closed_after_s_p50": figures["closed_after_s_p50"],
        "idle_closed_after_s_max": figures["closed_after_s_max"],
        "idle_still_open": figures["still_open_after_hold"],
        "idle_orders_per_s": orders["per_s"], "idle_p50_ms": orders["p50_ms"],
        "idle_p99_ms": orders["p99_ms"], "idle_order_retcodes": orders["codes"],
        "server_rss_mb_before_idle": before["rss_mb"], "server_rss_mb_idle_held": held["rss_mb"],
        "server_rss_mb_idle_and_orders": loaded["rss_mb"],
        "server_rss_mb_after_idle_closed": after["rss_mb"],
        "server_peak_rss_mb": after["peak_rss_mb"],
        "server_fds_before_idle": before["fds"], "server_fds_idle_held": held["fds"],
        "server_fds_after_load": loaded["fds"], "server_fds_after_idle_closed": after["fds"],
    }


def _new_keys(data: Path, clients: int) -> list[list[str]]:
    """Create `clients` keys (own accounts, demo funds) in `data`; return (key, secret) pairs."""
    store = KeyStore(data)
    keys = [store.create(demo_funds="100000", rate_limit=1_000_000) for _ in range(clients)]
    store.close()
    return [[k.api_key, k.secret] for k in keys]


def _through_gateways(count: int, clients: int, seconds: float,
                      pipeline: int, shared_limits: str = "", writer_only: str = "",
                      profile: str = "", profile_gateway: str = "") -> dict[str, Any]:
    """Baseline GET and signed orders against `perpx serve --gateways count`; RSS of each.

    With `shared_limits` (a NATS URL) the gateways share rate limits through it (a bucket
    fresh to the run), and the figures are named `gateways_N_shared_*`. With `writer_only`
    (a NATS URL) the venue runs split (`--projectors 1 --bus URL` on a stream fresh to the
    run): the writer only sequences and publishes, projector 0 keeps the history tables the
    gateways read (figures `gateways_N_writer_only_*`). The CPU each process used during the
    orders is given per second and, for the writer, per order. With `profile` (a path) the
    writer runs under cProfile, its statistics written there when it stops; with
    `profile_gateway` each gateway is profiled during the orders only (SIGUSR1 before them,
    SIGUSR2 after: `GatewayService.profile_on_signals`), to `profile_gateway.PID`.
    """
    venue = f"PERPX_BENCH_{uuid.uuid4().hex[:10].upper()}"
    shared = ["--shared-limits", shared_limits, "--bus-stream", venue] if shared_limits else []
    split = (["--projectors", "1", "--bus", writer_only, "--bus-stream", venue]
             if writer_only else [])
    profiled = ["cProfile", "-o", profile, "-m"] if profile else []
    with tempfile.TemporaryDirectory(prefix="perpx-bench-gw-") as folder:
        data = Path(folder)
        pairs = _new_keys(data, clients)
        port = _free_port()
        server = _start([*profiled, "perpx.cli", "serve", "--port", str(port), "--data",
                         str(data), "--no-maker", "--gateways", str(count), *shared, *split],
                        env={"PERPX_PROFILE_GATEWAY": profile_gateway} if profile_gateway else None)
        try:
            assert server.stdout is not None
            pids: dict[str, list[int]] = {"gateway": [], "projector": []}
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # the writer names each child's pid
                line = server.stdout.readline().decode()
                if not line:
                    break
                role = line.split(" ", 1)[0]
                if ": started, pid " in line and role in pids:
                    pids[role].append(int(line.rsplit(" ", 1)[1]))
                if f"through {count} gateways" in line:
                    break
            price = _wait_ready(f"http://127.0.0.1:{port}", server)
            job = {"host": "127.0.0.1", "port": port, "keys": pairs, "seconds": seconds,
                   "pipeline": pipeline, "price": price}
            base = _loadgen({**job, "kind": "time"})
            everyone = [server.pid, *pids["gateway"], *pids["projector"]]
            _signal(pids["gateway"] if profile_gateway else [], signal.SIGUSR1)
            before, started = {pid: _cpu_s(pid) for pid in everyone}, time.monotonic()
            orders = _loadgen({**job, "kind": "order"})
            elapsed = time.monotonic() - started
            cpu = {pid: round((_cpu_s(pid) - before[pid]) / elapsed, 2) for pid in everyone}
            done = orders["per_s"] * seconds  # orders acknowledged during the measurement
            gateway_us = [round((_cpu_s(pid) - before[pid]) * 1e6 / done, 1) if done else None
                          for pid in pids["gateway"]]
            _signal(pids["gateway"] if profile_gateway else [], signal.SIGUSR2)
            writer_us = (round((_cpu_s(server.pid) - before[server.pid]) * 1e6 / done, 1)
                         if done else None)
            writer_rss = _server_memory(server.pid)["rss_mb"]
            gateway_rss = [_server_memory(pid)["rss_mb"] for pid in pids["gateway"]]
            projector_rss = [_server_memory(pid)["rss_mb"] for pid in pids["projector"]]
        finally:
            _stop(server)
            if shared_limits:
                from perpx.api.sharedlimits import drop_buckets

                drop_buckets(shared_limits, f"perpx_limits_{venue}")
            if writer_only:
                _drop_stream(writer_only, venue)
    name = f"gateways_{count}" + ("_shared" if shared_limits else "") + (
        "_writer_only" if writer_only else "")
    return {
        f"{name}_orders_per_s": orders["per_s"], f"{name}_p50_ms": orders["p50_ms"],
        f"{name}_p99_ms": orders["p99_ms"], f"{name}_order_retcodes": orders["codes"],
        f"{name}_baseline_time_req_per_s": base["per_s"],
        f"{name}_baseline_p99_ms": base["p99_ms"],
        f"{name}_ratio_to_baseline": round(orders["per_s"] / base["per_s"], 3)
        if base["per_s"] else None,
        f"{name}_writer_rss_mb": writer_rss, f"{name}_gateway_rss_mb": gateway_rss,
        f"{name}_projector_rss_mb": projector_rss,
        f"{name}_writer_cpu": cpu[server.pid], f"{name}_writer_cpu_us_per_order": writer_us,
        f"{name}_gateway_cpu": [cpu[pid] for pid in pids["gateway"]],
        f"{name}_gateway_cpu_us_per_order": gateway_us,
        f"{name}_projector_cpu": [cpu[pid] for pid in pids["projector"]],
    }


def _signal(pids: list[int], number: signal.Signals) -> None:
    """Send `number` to each pid; give the profilers a moment to start (or write) first."""
    for pid in pids:
        os.kill(pid, number)
    if pids:
        time.sleep(0.5)


def _drop_stream(url: str, stream: str) -> None:
    """Delete the run's JetStream stream (a benchmark leaves nothing behind)."""
    import asyncio
    import contextlib

    from perpx.bus import JetStreamBus

    async def drop() -> None:
        bus = JetStreamBus(url, stream)
        try:
            with contextlib.suppress(Exception):  # never created: nothing to drop
                await bus.delete_stream()
        finally:
            await bus.close()

    asyncio.run(drop())


def _trivial_ceiling(pairs: list[list[str]], seconds: float, pipeline: int) -> dict[str, Any]:
    port = _free_port()
    server = _start(["perpx.bench.loadgen", "trivial", str(port)])
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != b"ready":
            raise RuntimeError("the trivial server did not start")
        return _loadgen({"host": "127.0.0.1", "port": port, "kind": "order", "keys": pairs,
                         "seconds": seconds, "pipeline": pipeline})
    finally:
        _stop(server)


def bench_api(clients: int = 64, seconds: float = 5.0, *, pipeline: int = 1,
              ws_subscribers: int = 200, idle: int = 0, idle_per_address: int = 400,
              gateways: list[int] | None = None, shared_limits: str = "",
              writer_only: str = "", profile_writer: str = "", profile_gateway: str = "",
              echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure the client's ceiling, the baseline, signed orders and WS fan-out; JSON last.

    With `idle`, signed orders are measured again beside that many idle connections; with
    `gateways`, again through that many gateway processes (each count in the list), and
    with `shared_limits` (a NATS URL) once more with the gateways sharing rate limits there,
    and with `writer_only` (a NATS URL) once more split: the writer only, projector 0 keeping
    the history the gateways read (`_through_gateways`; `profile_writer` profiles its writer).
    """
    gateways = gateways or []
    if clients < 1 or seconds <= 0 or pipeline < 1 or ws_subscribers < 0 or idle < 0 \
            or idle_per_address < 1 or any(count < 1 for count in gateways):
        raise ValueError("clients, pipeline and idle_per_address must be at least 1, "
                         "seconds above 0")
    if idle:
        from perpx.bench.idle import raise_fd_limit

        raise_fd_limit()  # the server, started from here, inherits it
    with tempfile.TemporaryDirectory(prefix="perpx-bench-") as folder:
        data = Path(folder)
        pairs = _new_keys(data, clients)
        ceiling = _trivial_ceiling(pairs, seconds, pipeline)
        port = _free_port()
        server = _start(["perpx.cli", "serve", "--port", str(port), "--data", str(data),
                         "--no-maker"])
        try:
            price = _wait_ready(f"http://127.0.0.1:{port}", server)
            job = {"host": "127.0.0.1", "port": port, "keys": pairs, "seconds": seconds,
                   "pipeline": pipeline, "price": price}
            base = _loadgen({**job, "kind": "time"})
            cpu_before, started = _cpu_s(server.pid), time.monotonic()
            orders = _loadgen({**job, "kind": "order"})
            # The single process's CPU (every thread) during the orders: per second, and
            # per order acknowledged (what bounds it on 2 cores beside the load generator).
            server_cpu_s = _cpu_s(server.pid) - cpu_before
            server_cpu = round(server_cpu_s / (time.monotonic() - started), 2)
            done = orders["per_s"] * seconds
            server_us = round(server_cpu_s * 1e6 / done, 1) if done else None
            server_rss = _server_memory(server.pid)["rss_mb"]
            under_idle = _under_idle(job, server, idle, idle_per_address) if idle else {}
        finally:
            _stop(server)
    through: dict[str, Any] = {}
    for count in gateways:
        through.update(_through_gateways(count, clients, seconds, pipeline))
        if shared_limits:
            through.update(_through_gateways(count, clients, seconds, pipeline, shared_limits))
        if writer_only:
            through.update(_through_gateways(count, clients, seconds, pipeline,
                                             writer_only=writer_only, profile=profile_writer,
                                             profile_gateway=profile_gateway))
    from perpx.bench.ladder import measure

    writer = measure("writer", clients, seconds)
    ws: dict[str, Any] | None = None
    if ws_subscribers:
        from perpx.bench.ws import bench_ws

        ws = bench_ws(ws_subscribers, min(seconds, 3.0), echo=lambda line: echo("  ws: " + line))
    result = {
        "bench": "api", "clients": clients, "seconds": seconds, "pipeline": pipeline,
        "orders_per_s": orders["per_s"], "p50_ms": orders["p50_ms"],
        "p99_ms": orders["p99_ms"], "order_retcodes": orders["codes"],
        "baseline_time_req_per_s": base["per_s"], "baseline_p50_ms": base["p50_ms"],
        "baseline_p99_ms": base["p99_ms"],
        "ratio_to_baseline": round(orders["per_s"] / base["per_s"], 3) if base["per_s"] else None,
        "client_ceiling_req_per_s": ceiling["per_s"], "client_ceiling_p50_ms": ceiling["p50_ms"],
        "client_ceiling_p99_ms": ceiling["p99_ms"],
        "ratio_to_client_ceiling": round(orders["per_s"] / ceiling["per_s"], 3)
        if ceiling["per_s"] else None,
        "writer_orders_per_s": writer["per_s"], "writer_p50_ms": writer["p50_ms"],
        "writer_p99_ms": writer["p99_ms"],
        "ws_subscribers": ws_subscribers,
        "ws_msgs_per_s": ws["ws_msgs_per_s"] if ws is not None else None,
        "idle": idle, **under_idle,
        "server_rss_mb": server_rss, "server_cpu": server_cpu,
        "server_cpu_us_per_order": server_us, "gateways": gateways, "shared_limits": shared_limits,
        "writer_only": writer_only,
        **through,
    }
    echo(f"client ceiling (signed requests, trivial server): {ceiling['per_s']:,} req/s, "
         f"p50 {ceiling['p50_ms']} ms, p99 {ceiling['p99_ms']} ms")
    echo(f"baseline GET /v5/market/time: {base['per_s']:,} req/s, "
         f"p50 {base['p50_ms']} ms, p99 {base['p99_ms']} ms")
    echo(f"signed POST /v5/order/create: {orders['per_s']:,} orders/s, "
         f"p50 {orders['p50_ms']} ms, p99 {orders['p99_ms']} ms "
         f"({clients} clients, pipeline {pipeline}, retCodes {orders['codes']})")
    echo(f"  the serving process's CPU during them: {server_cpu} ({server_us} us/order)")
    echo(f"ratio to baseline: {result['ratio_to_baseline']}, "
         f"to the client's ceiling: {result['ratio_to_client_ceiling']}")
    echo(f"the single writer alone (no HTTP, in process): {writer['per_s']:,} orders/s, "
         f"p50 {writer['p50_ms']} ms, p99 {writer['p99_ms']} ms")
    if ws is not None:
        echo(f"WebSocket: {ws['ws_msgs_per_s']:,} msgs/s to {ws_subscribers} subscribers")
    for name in [f"gateways_{count}{suffix}" for count in gateways
                 for suffix in ("", "_shared", "_writer_only")
                 if suffix == "" or (suffix == "_shared" and shared_limits)
                 or (suffix == "_writer_only" and writer_only)]:
        count = int(name.split("_")[1])
        if name.endswith("_shared"):
            echo(f"  (next: the gateways share rate limits through {shared_limits})")
        if name.endswith("_writer_only"):
            echo(f"  (next: split, the writer only; projector 0 keeps the history through "
                 f"{writer_only}; projector RSS {through[name + '_projector_rss_mb']} MB)")
        base_per_s = through[name + "_baseline_time_req_per_s"]
        echo(f"through {count} gateway(s): baseline GET {base_per_s:,} req/s; signed "
             f"orders {through[name + '_orders_per_s']:,}/s, p50 "
             f"{through[name + '_p50_ms']} ms, p99 {through[name + '_p99_ms']} ms (ratio "
             f"{through[name + '_ratio_to_baseline']}); RSS writer "
             f"{through[name + '_writer_rss_mb']} MB, gateways "
             f"{through[name + '_gateway_rss_mb']} MB (single process: {server_rss} MB); "
             f"CPU writer {through[name + '_writer_cpu']} "
             f"({through[name + '_writer_cpu_us_per_order']} us/order), gateways "
             f"{through[name + '_gateway_cpu']}, projector {through[name + '_projector_cpu']}")
    if under_idle:
        echo(f"with {idle} idle connections: {under_idle['idle_accepted']} accepted, "
             f"{under_idle['idle_refused']} refused, {under_idle['idle_connect_errors']} "
             f"connect errors, {under_idle['idle_closed_by_timeout']} closed by the server "
             f"(p50 {under_idle['idle_closed_after_s_p50']} s, max "
             f"{under_idle['idle_closed_after_s_max']} s), {under_idle['idle_still_open']} "
             f"still open")
        echo(f"  signed orders beside them: {under_idle['idle_orders_per_s']:,} orders/s, "
             f"p50 {under_idle['idle_p50_ms']} ms, p99 {under_idle['idle_p99_ms']} ms")
        echo(f"  server RSS {under_idle['server_rss_mb_before_idle']} MB before, "
             f"{under_idle['server_rss_mb_idle_held']} MB holding them, "
             f"{under_idle['server_rss_mb_idle_and_orders']} MB after the orders, "
             f"{under_idle['server_rss_mb_after_idle_closed']} MB once closed (peak "
             f"{under_idle['server_peak_rss_mb']} MB); descriptors "
             f"{under_idle['server_fds_before_idle']} -> {under_idle['server_fds_idle_held']}"
             f" -> {under_idle['server_fds_after_idle_closed']}")
    echo(json.dumps(result))
    return result
