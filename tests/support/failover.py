"""Load and checks shared by the leader failover tests (standby, gateways in front).

Three clients send signed orders and cancels, simply reconnecting (or resending to whoever
serves) when their server stops answering; the test kills the leader, then pauses the load
and checks what was acknowledged against the journal.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import threading
import time
from dataclasses import dataclass, field

import httpx

from perpx.api.keys import ApiKey
from perpx.core.commands import PlaceOrder
from perpx.core.engine import Engine
from perpx.instruments import served_instruments
from perpx.store import open_journal
from support.serving import Acked, Server, random_order, signed

CLIENTS = 3


@dataclass
class Load:
    """The clients' shared state: what was acknowledged, and when."""

    acked: Acked = field(default_factory=Acked)
    # Per client: (when the request was sent, when its acknowledgement came), monotonic.
    ack_times: list[list[tuple[float, float]]] = field(
        default_factory=lambda: [[] for _ in range(CLIENTS)])
    stop: threading.Event = field(default_factory=threading.Event)
    pause: threading.Event = field(default_factory=threading.Event)
    idle: list[threading.Event] = field(
        default_factory=lambda: [threading.Event() for _ in range(CLIENTS)])
    # Refused order requests by reply: retMsg -> count (a gateway's "outcome is unknown").
    refusals: dict[str, int] = field(default_factory=dict)

    def first_acks_after(self, moment: float) -> list[float]:
        """Each client's first order sent after `moment` and acknowledged: seconds to its ack.

        Sent after, so a reply of the old leader that arrived after the kill is not counted.
        """
        found = []
        for times in self.ack_times:
            later = [acked for sent, acked in list(times) if sent > moment]
            if later:
                found.append(later[0] - moment)
        return found


def client(url: str, key: ApiKey, number: int, load: Load) -> None:
    """Place, cross and cancel signed orders; on a dead connection, reconnect and go on."""
    rng = random.Random(f"standby:{number}")
    mine: list[str] = []
    sends = 0
    mark = 0.0
    with httpx.Client(base_url=url, timeout=5) as http:
        while not load.stop.is_set():
            if load.pause.is_set():
                load.idle[number].set()
                time.sleep(0.01)
                continue
            load.idle[number].clear()
            try:
                if not mark:
                    ticker = http.get("/v5/market/tickers?category=linear&symbol=BTCUSDT")
                    mark = float(ticker.json()["result"]["list"][0]["markPrice"])
                draw = rng.random()
                if draw < 0.3 and mine:
                    order_id = mine.pop(rng.randrange(len(mine)))
                    reply = signed(http, key, "POST", "/v5/order/cancel", {
                        "category": "linear", "symbol": "BTCUSDT", "orderId": order_id})
                    if reply["retCode"] == 0:
                        with load.acked.lock:
                            load.acked.orders[order_id] = (number, True)
                    elif "outcome is unknown" in str(reply["retMsg"]):
                        with load.acked.lock:
                            message = "cancel: " + str(reply["retMsg"])
                            load.refusals[message] = load.refusals.get(message, 0) + 1
                    continue
                params = random_order(rng, mark, market=draw < 0.4)
                sends += 1  # a link id per request: a duplicate would show in the journal
                params["orderLinkId"] = f"load-{number}-{sends}"
                sent = time.monotonic()
                reply = signed(http, key, "POST", "/v5/order/create", params)
                if reply["retCode"] != 0:
                    with load.acked.lock:
                        message = str(reply["retMsg"])
                        load.refusals[message] = load.refusals.get(message, 0) + 1
                if reply["retCode"] == 0:
                    order_id = reply["result"]["orderId"]
                    with load.acked.lock:
                        load.acked.orders[order_id] = (number, False)
                    load.ack_times[number].append((sent, time.monotonic()))
                    if params["orderType"] == "Limit":
                        mine.append(order_id)
            except (httpx.HTTPError, OSError, ValueError, KeyError):
                time.sleep(0.02)  # the leader is gone: reconnect to whoever serves the port


def pause(load: Load) -> None:
    load.pause.set()
    for idle in load.idle:
        assert idle.wait(30), "a client did not pause"


def kill_leader(leader: Server, rng: random.Random, mode: str) -> float:
    """Kill the leader (after a while, or while it stores a snapshot); return when."""
    if mode == "snapshot":
        while not leader.lines.empty():  # only a snapshot that starts from now on
            leader.lines.get_nowait()
        give_up = time.monotonic() + 20
        while time.monotonic() < give_up:
            try:
                line = leader.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line.endswith("storing"):
                time.sleep(rng.uniform(0.0, 0.01))
                break
    else:
        time.sleep(rng.uniform(0.3, 1.2))
    os.kill(leader.proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    leader.proc.wait(timeout=30)
    return killed


def replayed_hash(location: str, seq: int) -> str:
    """The state hash of an independent replay of the journal's first `seq` commands."""
    journal = open_journal(location, readonly=True)
    engine = Engine(served_instruments())
    try:
        for command in journal.read(1):
            if command.seq > seq:
                break
            engine.apply(command)
    finally:
        journal.close()
    assert engine.last_seq == seq
    return engine.state_hash()


def link_ids_journaled(location: str) -> dict[str, int]:
    """How many times each order link id was journaled in a place-order command."""
    counts: dict[str, int] = {}
    journal = open_journal(location, readonly=True)
    try:
        for command in journal.read(1):
            if isinstance(command, PlaceOrder) and command.order_link_id:
                counts[command.order_link_id] = counts.get(command.order_link_id, 0) + 1
    finally:
        journal.close()
    return counts
