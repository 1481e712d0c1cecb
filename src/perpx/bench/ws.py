"""`perpx bench ws`: WebSocket messages per second delivered to many subscribers.

One process runs the exchange (engine, sequencer with an in-memory journal, stream hub, uvicorn
on a loopback port) in one thread and the clients (the `websockets` library, counting frames
without parsing them) in another. Every client subscribes to `orderbook.50.BTCUSDT` and
`publicTrade.BTCUSDT`; a seeded order flow then runs at a fixed pace for a fixed time, and the
figure is frames received by all clients per second. The baseline is the same run with one
subscriber; the ratio says how much the fan-out multiplies delivered throughput. Both threads
share one interpreter lock and two cores, so the figures are for the whole loop, clients included.

With `gateways` (e.g. ``[1, 2]``), the same fan-out is measured again through `perpx serve
--gateways N` (real processes on a fresh data folder: the writer serves no HTTP, each gateway
folds the journal and publishes its own streams): `gateway_subscribers` connections (1,000 by
default) spread by the kernel over the gateways' shared port, each subscribed to the order
book, trades and ticker of BTCUSDT (`GATEWAY_TOPICS`); the order flow goes straight to the
writer's command socket. Figures (``gateways_N_*``): messages/s delivered, the RSS and the CPU
share (of one core) of the writer, of each gateway and of this process (the clients and the
driver), and the load average before and after, as the machine may be shared.

A message is encoded and framed once per topic (`StreamHub._publish`, `Outgoing`) and the
same frame bytes are written to every subscriber's transport, one write per connection per
turn of the loop (`perpx.api.ws.connection`).

With `client_processes` K (`--client-processes`), the subscribers are not `websockets`
clients in a thread of this process but frame-counting clients in K processes
(`perpx.bench.wsclient`): a `websockets` client costs about as much per frame as the server
does, and in process it shares the interpreter lock with the server, so with it the figure
measured the clients. The in-process server then runs alone in this process (fields
`server_cpu`, `server_cpu_wait`, `server_rss_mb`, `clients_cpu`, `clients_rss_mb`,
`per_subscriber_min_max`), and the gateway figures add `gateways_N_client_procs_*`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from perpx.api.server import LoopServerThread
from perpx.api.ws.hub import StreamHub
from perpx.api.ws.server import build_routes
from perpx.bench.procs import cpu_s as _cpu_s
from perpx.core import CancelOrder, Engine, OrderType, PlaceOrder, Side, TimeInForce
from perpx.core.commands import Command, Deposit, MarkPrice
from perpx.instruments import load_instruments
from perpx.sequencer import Sequencer
from perpx.store.journal import MemoryJournal

TOPICS = ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"]
GATEWAY_TOPICS = [*TOPICS, "tickers.BTCUSDT"]
CONNECT_AT_ONCE = 50  # connections opened concurrently (the listen backlog is finite)
# Subscribers per loopback source address (127.0.0.2, .3, ...): under the server's cap of
# connections per address (`Limits.max_connections_per_address`).
PER_ADDRESS = 250
_MID = 300_000  # 30,000.0 in BTCUSDT ticks


class _Server:
    """The exchange behind uvicorn, in a thread with its own event loop."""

    def __init__(self) -> None:
        self.engine = Engine([s for s in load_instruments() if s.symbol == "BTCUSDT"])
        self.sequencer = Sequencer(self.engine, MemoryJournal())
        self.hub = StreamHub(self.engine, max_buffer=1 << 28)
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


class _ClientProcesses:
    """`processes` counting subscribers (`perpx.bench.wsclient`) sharing `subscribers`."""

    def __init__(self, url: str, subscribers: int, topics: list[str], processes: int) -> None:
        import subprocess
        import sys

        shares = [subscribers // processes + (1 if i < subscribers % processes else 0)
                  for i in range(processes)]
        firsts = [sum(shares[:i]) for i in range(processes)]
        self.procs = [subprocess.Popen(
            [sys.executable, "-m", "perpx.bench.wsclient", url, str(share), str(first),
             *topics], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
            for share, first in zip(shares, firsts, strict=True) if share]
        self.pids = [proc.pid for proc in self.procs]

    def _say(self, word: str) -> list[str]:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(word.encode() + b"\n")
            proc.stdin.flush()
        return [self._line(proc) for proc in self.procs]

    @staticmethod
    def _line(proc: Any) -> str:
        assert proc.stdout is not None
        line: str = proc.stdout.readline().decode().strip()
        if not line:
            raise RuntimeError(f"a subscriber process ended ({proc.wait()})")
        return line

    def ready(self) -> None:
        """Wait for every subscription to be acknowledged."""
        for proc in self.procs:
            if self._line(proc) != "ready":
                raise RuntimeError("the subscribers did not all connect")

    def start(self) -> None:
        """Mark the counts."""
        self._say("start")

    def stop(self) -> tuple[list[int], int]:
        """Return frames per subscriber since `start`, and how many were cut off."""
        received: list[int] = []
        cut_off = 0
        for line in self._say("stop"):
            figures = json.loads(line)
            received += figures["counts"]
            cut_off += figures["cut_off"]
        return received, cut_off

    def close(self) -> None:
        """End the processes."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


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


def _measure(subscribers: int, seconds: float, per_tick: int, seed: int,
             client_processes: int = 0) -> dict[str, Any]:
    server = _Server()
    server.start()
    try:
        async def setup() -> None:
            for account in range(1, 6):
                await server.sequencer.submit(Deposit(0, 0, account, "USDT", 10**17))
            await server.sequencer.submit(MarkPrice(0, 0, "BTCUSDT", _MID))

        server.run(setup())
        if client_processes:
            return _measure_apart(server, subscribers, seconds, per_tick, seed,
                                  client_processes)
        received = [0] * subscribers
        cut_off: list[int] = []
        ready = threading.Event()
        done = threading.Event()
        counting = threading.Event()

        async def client(i: int, connected: Callable[[], None]) -> None:
            # From 127.0.0.2, .3, ...: under the server's cap of connections per address.
            async with connect(server.url, max_size=None, ping_interval=None,
                               local_addr=(f"127.0.0.{2 + i // PER_ADDRESS}", 0)) as ws:
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


def _measure_apart(server: _Server, subscribers: int, seconds: float, per_tick: int, seed: int,
                   processes: int) -> dict[str, Any]:
    """`_measure` with the subscribers in `processes` counting processes: this one serves."""
    from perpx.bench.procs import server_memory

    clients = _ClientProcesses(server.url, subscribers, TOPICS, processes)
    try:
        clients.ready()
        time.sleep(0.3)  # the snapshots
        clients.start()
        own, cpu = _own_cpu_s(), {pid: _cpu_s(pid) for pid in clients.pids}
        waited = _waiting_s(os.getpid())
        started = time.perf_counter()
        commands = server.run(_drive(server, seconds, per_tick, seed))
        time.sleep(0.3)  # the last throttled deltas
        received, cut_off = clients.stop()
        elapsed = time.perf_counter() - started
        server_cpu = (_own_cpu_s() - own) / elapsed
        server_wait = (_waiting_s(os.getpid()) - waited) / elapsed
        clients_cpu = [round((_cpu_s(pid) - cpu[pid]) / elapsed, 2) for pid in clients.pids]
        server_rss = server_memory(os.getpid())["rss_mb"]
        clients_rss = [server_memory(pid)["rss_mb"] for pid in clients.pids]
    finally:
        clients.close()
    total = sum(received)
    return {"subscribers": subscribers, "commands": commands, "seconds": elapsed,
            "messages": total, "msgs_per_s": total / elapsed,
            "per_subscriber_per_s": total / elapsed / subscribers, "cut_off": cut_off,
            "min_max": [min(received), max(received)], "server_cpu": round(server_cpu, 2),
            "server_cpu_wait": round(server_wait, 2),
            "server_rss_mb": server_rss, "clients_cpu": clients_cpu, "clients_rss_mb": clients_rss}


def _waiting_s(pid: int) -> float:
    """Seconds a process's threads have waited, runnable, for a CPU (0 without schedstat).

    Set beside the CPU used, it says whether a process was bounded by its own work (CPU
    near a core, little waiting) or by the CPU the machine gave it (waiting).
    """
    total = 0.0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as stat:
                total += int(stat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return total
    return total


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def _flow_from_replies(rng: random.Random, resting: list[tuple[int, int]]) -> Command:
    """Return the next command of `_flow_command`'s flow; cancels name orders placed before.

    `resting`: (order id, account) of the limit orders the writer's replies named.
    """
    roll = rng.random()
    if roll < 0.25 and resting:
        order_id, owner = resting.pop(rng.randrange(max(0, len(resting) - 200), len(resting)))
        return CancelOrder(0, 0, owner, "BTCUSDT", order_id)
    side = Side.BUY if rng.random() < 0.5 else Side.SELL
    account = rng.randint(1, 5)
    if roll < 0.35:
        return PlaceOrder(0, 0, account, "BTCUSDT", side, OrderType.MARKET, rng.randint(1, 10))
    behind = rng.randint(-3, 80)
    price = _MID - behind if side is Side.BUY else _MID + behind
    return PlaceOrder(0, 0, account, "BTCUSDT", side, OrderType.LIMIT, rng.randint(1, 20), price,
                      TimeInForce.GTC)


async def _drive_writer(socket_path: Path, seconds: float, per_tick: int, seed: int,
                        counting: Callable[[], None]) -> int:
    """Fund five accounts, then send `per_tick` commands every 10 ms to the writer's socket."""
    from perpx.transport import UnixWriterClient

    writer = UnixWriterClient(socket_path, timeout_s=30)
    rng = random.Random(seed)
    resting: list[tuple[int, int]] = []
    try:
        for account in range(1, 6):
            await writer.submit(Deposit(0, 0, account, "USDT", 10**17))
        await writer.submit(MarkPrice(0, 0, "BTCUSDT", _MID))
        counting()
        count = 0

        async def batch(commands: list[Command]) -> None:
            replies = await asyncio.gather(*(writer.submit(c) for c in commands),
                                           return_exceptions=True)
            for command, reply in zip(commands, replies, strict=True):
                if isinstance(reply, BaseException) or not isinstance(
                        command, PlaceOrder) or command.order_type is not OrderType.LIMIT:
                    continue
                placed = [e.order_id for e in reply[1] if hasattr(e, "order_id")]
                if placed:
                    resting.append((placed[0], command.account_id))

        # Paced like the in-process flow (`_drive`), but without waiting for a tick's replies
        # before the next tick: a round trip over the socket would otherwise set the pace.
        in_flight: set[asyncio.Task[None]] = set()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            commands = [_flow_from_replies(rng, resting) for _ in range(per_tick)]
            task = asyncio.ensure_future(batch(commands))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            count += len(commands)
            await asyncio.sleep(0.01)
        if in_flight:
            await asyncio.gather(*in_flight)
        return count
    finally:
        await writer.close()


def _through_gateways(count: int, subscribers: int, seconds: float, per_tick: int,
                      seed: int, client_processes: int = 0) -> dict[str, Any]:
    """Fan-out to `subscribers` through `perpx serve --gateways count`: msgs/s, RSS, CPU."""
    from perpx.bench.procs import free_port as _free_port
    from perpx.bench.procs import server_memory as _server_memory
    from perpx.bench.procs import start as _start
    from perpx.bench.procs import stop as _stop

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="perpx-bench-wsgw-") as folder:
        data = Path(folder)
        port = _free_port()
        server = _start(["perpx.cli", "serve", "--port", str(port), "--data", str(data),
                         "--no-maker", "--production", "--gateways", str(count)])
        try:
            assert server.stdout is not None
            pids: list[int] = []
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # the writer names each gateway's pid
                line = server.stdout.readline().decode()
                if not line:
                    raise RuntimeError("the writer ended: " + (
                        server.stderr.read() if server.stderr else b"").decode()[-2000:])
                if ": started, pid " in line:
                    pids.append(int(line.rsplit(" ", 1)[1]))
                if f"through {count} gateways" in line:
                    break
            # Drain the writer's output (its gateways print there too) so it never blocks.
            threading.Thread(target=server.stdout.read, daemon=True).start()
            url = f"ws://127.0.0.1:{port}/v5/public/linear"
            received = [0] * subscribers
            cut_off: list[int] = []
            opened: list[Any] = []
            ready = threading.Event()
            done = threading.Event()
            counting = threading.Event()

            async def subscriber(i: int, gate: asyncio.Semaphore,
                                 connected: Callable[[], None]) -> None:
                async with gate:
                    for attempt in range(50):  # a gateway may still be starting
                        try:
                            ws = await connect(url, max_size=None, ping_interval=None,
                                               open_timeout=30, local_addr=(
                                                   f"127.0.0.{2 + i // PER_ADDRESS}", 0))
                            break
                        except OSError:
                            await asyncio.sleep(0.1 * (attempt + 1))
                    else:
                        raise RuntimeError(f"no gateway answers {url}")
                    await ws.send(json.dumps({"op": "subscribe", "args": GATEWAY_TOPICS}))
                    await ws.recv()  # the ack
                connected()
                opened.append(ws)
                # `async for` rather than a timed `recv` per frame: the clients share this
                # process (and the machine) with the driver, so their cost is kept small.
                try:
                    async for _frame in ws:
                        if counting.is_set():
                            received[i] += 1
                except ConnectionClosed:
                    pass
                if not done.is_set():
                    cut_off.append(i)  # fell too far behind (or the gateway stopped)

            async def closer() -> None:
                while not done.is_set():
                    await asyncio.sleep(0.1)
                for ws in opened:
                    ws.transport.abort()

            def clients() -> None:
                async def main() -> None:
                    pending = [subscribers]
                    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

                    def connected() -> None:
                        pending[0] -= 1
                        if pending[0] == 0:
                            ready.set()

                    await asyncio.gather(closer(), *(subscriber(i, gate, connected)
                                                     for i in range(subscribers)))

                try:
                    asyncio.run(main())
                except Exception as failure:  # told to the main thread, which stops
                    failed.append(failure)
                    ready.set()

            failed: list[Exception] = []
            apart: _ClientProcesses | None = None
            thread = threading.Thread(target=clients, daemon=True)
            if client_processes:
                apart = _ClientProcesses(url, subscribers, GATEWAY_TOPICS, client_processes)
                apart.ready()
            else:
                thread.start()
                if not ready.wait(300) or failed:
                    raise RuntimeError(f"the subscribers did not all connect: {failed!r}")
            client_pids = apart.pids if apart is not None else []
            time.sleep(0.5)  # the snapshots
            marks: dict[str, float] = {}

            def start_counting() -> None:
                if apart is not None:
                    apart.start()
                marks["started"] = time.perf_counter()
                marks["own"] = _own_cpu_s()
                marks.update({str(pid): _cpu_s(pid)
                              for pid in [server.pid, *pids, *client_pids]})
                marks.update({f"wait{pid}": _waiting_s(pid)
                              for pid in [server.pid, *pids, os.getpid(), *client_pids]})
                counting.set()

            socket_path = data / "command.sock"
            commands = asyncio.run(_drive_writer(socket_path, seconds, per_tick, seed,
                                                 start_counting))
            time.sleep(0.3)  # the last throttled deltas
            counting.clear()
            if apart is not None:
                received, apart_cut_off = apart.stop()
                cut_off = [0] * apart_cut_off
            elapsed = time.perf_counter() - marks["started"]
            cpu = {pid: round((_cpu_s(pid) - marks[str(pid)]) / elapsed, 2)
                   for pid in [server.pid, *pids, *client_pids]}
            own_cpu = round((_own_cpu_s() - marks["own"]) / elapsed, 2)
            waited = {pid: round((_waiting_s(pid) - marks[f"wait{pid}"]) / elapsed, 2)
                      for pid in [server.pid, *pids, os.getpid(), *client_pids]}
            writer_rss = _server_memory(server.pid)["rss_mb"]
            gateway_rss = [_server_memory(pid)["rss_mb"] for pid in pids]
            clients_rss = [_server_memory(pid)["rss_mb"] for pid in client_pids]
            done.set()
            if apart is not None:
                apart.close()
            else:
                thread.join(30)
        finally:
            _stop(server)
            if server.poll() is None:
                server.kill()
    total = sum(received)
    name = f"gateways_{count}"
    return {
        f"{name}_subscribers": subscribers, f"{name}_commands": commands,
        f"{name}_seconds": round(elapsed, 3), f"{name}_msgs_per_s": round(total / elapsed, 1),
        f"{name}_per_subscriber_msgs_per_s": round(total / elapsed / subscribers, 2),
        # Every subscriber has the same topics: a spread says some were served later.
        f"{name}_per_subscriber_min_max": [min(received), max(received)],
        f"{name}_cut_off": len(cut_off),
        f"{name}_writer_rss_mb": writer_rss, f"{name}_gateway_rss_mb": gateway_rss,
        f"{name}_writer_cpu": cpu[server.pid],
        f"{name}_gateway_cpu": [cpu[pid] for pid in pids],
        f"{name}_clients_cpu": own_cpu,
        # Seconds waited for a CPU per second (summed over each process's threads).
        f"{name}_writer_cpu_wait": waited[server.pid],
        f"{name}_gateway_cpu_wait": [waited[pid] for pid in pids],
        f"{name}_clients_cpu_wait": waited[os.getpid()],
        f"{name}_loadavg_before": round(load_before[0], 2),
        f"{name}_loadavg_after": round(os.getloadavg()[0], 2),
        # With `client_processes`: the subscriber processes (`_clients_cpu` is then the
        # driver's alone).
        f"{name}_client_procs_cpu": [cpu[pid] for pid in client_pids],
        f"{name}_client_procs_cpu_wait": [waited[pid] for pid in client_pids],
        f"{name}_client_procs_rss_mb": clients_rss,
    }


def bench_ws(subscribers: int = 200, seconds: float = 3.0, per_tick: int = 20, seed: int = 42,
             echo: Callable[[str], None] = print, *, gateways: list[int] | None = None,
             gateway_subscribers: int = 1000, client_processes: int = 0) -> dict[str, Any]:
    """Measure delivered messages/s with one subscriber, then with `subscribers`; print JSON.

    With `gateways`, also through `perpx serve --gateways N` for each N (module docstring).
    With `client_processes`, the subscribers are counting clients in that many processes
    (`perpx.bench.wsclient`) rather than `websockets` clients in a thread of this one.
    """
    gateways = gateways or []
    if subscribers < 1 or seconds <= 0 or per_tick < 1 or gateway_subscribers < 1 \
            or client_processes < 0 or any(count < 1 for count in gateways):
        raise ValueError("subscribers, per_tick and gateway counts must be at least 1, "
                         "seconds above 0")
    base = _measure(1, seconds, per_tick, seed, client_processes and 1)
    echo(f"baseline: 1 subscriber, {base['commands']} commands in {base['seconds']:.2f} s: "
         f"{base['msgs_per_s']:,.0f} msgs/s")
    many = _measure(subscribers, seconds, per_tick, seed, client_processes)
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
              "cut_off": many["cut_off"], "client_processes": client_processes}
    if client_processes:  # this process served alone: its share, and the clients'
        result.update({"per_subscriber_min_max": many["min_max"],
                       "server_cpu": many["server_cpu"],
                       "server_cpu_wait": many["server_cpu_wait"],
                       "server_rss_mb": many["server_rss_mb"],
                       "clients_cpu": many["clients_cpu"],
                       "clients_rss_mb": many["clients_rss_mb"]})
        echo(f"  CPU (cores) server {many['server_cpu']} (waiting for a CPU "
             f"{many['server_cpu_wait']}), clients {many['clients_cpu']}; "
             f"RSS server {many['server_rss_mb']} MB, clients {many['clients_rss_mb']} MB")
    if gateways:
        result["gateways"] = gateways
        result["gateway_topics"] = GATEWAY_TOPICS
    for count in gateways:
        figures = _through_gateways(count, gateway_subscribers, seconds, per_tick, seed,
                                    client_processes)
        name = f"gateways_{count}"
        echo(f"{gateway_subscribers} subscribers through {count} gateways, "
             f"{figures[name + '_commands']} commands: {figures[name + '_msgs_per_s']:,.0f} "
             f"msgs/s ({figures[name + '_cut_off']} cut off); RSS writer "
             f"{figures[name + '_writer_rss_mb']} MB, gateways "
             f"{figures[name + '_gateway_rss_mb']} MB; CPU (cores) writer "
             f"{figures[name + '_writer_cpu']}, gateways {figures[name + '_gateway_cpu']}, "
             f"clients {figures[name + '_clients_cpu']}; waiting for a CPU: writer "
             f"{figures[name + '_writer_cpu_wait']}, gateways "
             f"{figures[name + '_gateway_cpu_wait']}, clients "
             f"{figures[name + '_clients_cpu_wait']}; load average "
             f"{figures[name + '_loadavg_before']} -> {figures[name + '_loadavg_after']}")
        result.update(figures)
    echo(json.dumps(result))
    return result
