"""Drive a real `perpx serve` process: start it, read what it prints, sign requests, check orders.

Shared by the kill -9 tests (`tests/recovery`): the server crash test, the hot standby's and
the API gateways'.
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from perpx.api.keys import ApiKey
from support.rest import signed_headers

RECOVERED = re.compile(r"recovered seq (\d+) from snapshot (\d+) \+ (\d+) commands .* "
                       r"state hash ([0-9a-f]{64})")
URL = re.compile(r"http://127\.0\.0\.1:(\d+)")


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, ended but not yet reaped, is gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def free_port() -> int:
    """Return a loopback port free at this moment (for a leader and its standby to share)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One `perpx serve` process and the lines it printed.

    By default it waits until the server serves (and has said what it recovered); a standby
    (`role="standby"`) is returned once it follows the journal: `wait_serving` waits for its
    takeover.
    """

    def __init__(self, data: Path, journal: str | None, *, port: int = 0,
                 role: str = "all", extra: tuple[str, ...] = (), maker: bool = False) -> None:
        args = [sys.executable, "-m", "perpx.cli", "serve", "--data", str(data), "--port",
                str(port), "--snapshot-every", "120", "--snapshot-seconds", "0"]
        if not maker:  # most tests want only their own orders in the book
            args.append("--no-maker")
        if journal is not None:
            args += ["--journal", journal]
        if role != "all":
            args += ["--role", role]
        args += extra
        env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = ""
        self.recovered: tuple[int, int, int, str] | None = None
        if role == "standby":
            deadline = time.monotonic() + 60
            while "standby: following" not in self.next_line(deadline):
                pass
        elif role == "gateway":  # a gateway recovers nothing: it follows, then serves
            self.recovered = (0, 0, 0, "")
            self.wait_serving()
        else:
            self.wait_serving()

    def wait_serving(self, timeout_s: float = 60) -> None:
        """Read the printed lines until the server serves; note what it recovered."""
        deadline = time.monotonic() + timeout_s
        while not self.url:
            line = self.next_line(deadline)
            found = RECOVERED.search(line)
            if found:
                seq, snap, tail, digest = found.groups()
                self.recovered = (int(seq), int(snap), int(tail), digest)
            url = URL.search(line)
            if url and "serving" in line:
                self.url = f"http://127.0.0.1:{url.group(1)}"
        assert self.recovered is not None, "\n".join(self.output)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line.rstrip())
            self.lines.put(line.rstrip())
        self.lines.put("")

    def next_line(self, deadline: float) -> str:
        """Return the next printed line; fail once the process has ended or time is up."""
        try:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError("server too slow:\n" + "\n".join(self.output)) from None
        if line == "" and self.proc.poll() is not None:
            raise AssertionError("server ended:\n" + "\n".join(self.output))
        return line

    def stop(self) -> None:
        """SIGTERM, and wait (a clean stop)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=60)

    def kill(self) -> None:
        """SIGKILL, and wait."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


def signed(client: httpx.Client, key: ApiKey, method: str, path: str,
           params: dict[str, Any]) -> dict[str, Any]:
    """Send a request signed with `key` (Bybit V5 HMAC); return the decoded reply."""
    payload = (json.dumps(params) if method == "POST"
               else "&".join(f"{k}={v}" for k, v in params.items()))
    headers = {**signed_headers(key, payload, int(time.time() * 1000)),
               "Content-Type": "application/json"}
    if method == "POST":
        reply = client.post(path, content=payload, headers=headers)
    else:
        reply = client.get(f"{path}?{payload}", headers=headers)
    reply.raise_for_status()
    return dict(reply.json())


@dataclass
class Acked:
    """Orders whose requests were acknowledged: order id -> (owner, cancel acknowledged)."""

    orders: dict[str, tuple[int, bool]] = field(default_factory=dict)
    killed_while_storing: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


def check_orders(url: str, keys: list[ApiKey], acked: Acked) -> None:
    """Every acknowledged order is there, cancelled if its cancel was acknowledged."""
    with acked.lock:
        orders = dict(acked.orders)
    with httpx.Client(base_url=url, timeout=10) as client:
        for order_id, (owner, cancelled) in orders.items():
            query = {"category": "linear", "orderId": order_id}
            rows = signed(client, keys[owner], "GET", "/v5/order/realtime", query)
            found = rows["result"]["list"]
            if not found:
                found = signed(client, keys[owner], "GET", "/v5/order/history",
                               query)["result"]["list"]
            assert len(found) == 1, f"acknowledged order {order_id} is gone"
            if cancelled:
                assert found[0]["orderStatus"] == "Cancelled", found[0]


def random_order(rng: random.Random, mark: float, market: bool) -> dict[str, Any]:
    """A small BTCUSDT order body: a market order, or a GTC limit near `mark`.

    Limits go from 2 USDT through the mark to 6 USDT away from it: some cross (and
    trade with the other clients), most rest.
    """
    side = rng.choice(("Buy", "Sell"))
    params: dict[str, Any] = {"category": "linear", "symbol": "BTCUSDT", "side": side,
                              "qty": f"0.00{rng.randint(1, 9)}"}
    if market:
        params["orderType"] = "Market"
    else:
        away = rng.randint(-20, 60) / 10
        price = mark - away if side == "Buy" else mark + away
        params.update(orderType="Limit", price=f"{price:.1f}", timeInForce="GTC")
    return params
