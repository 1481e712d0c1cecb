"""kill -9 the leader under signed load: the hot standby takes over, nothing acknowledged is lost.

A leader (`perpx serve`) and a standby (`perpx serve --role standby`, same data folder, same
journal, same port) run as real processes. Three clients send signed orders and cancels to
the port and simply reconnect when it stops answering. At each crash point the leader is
killed with SIGKILL (after a seeded time under load, or a seeded moment after it starts
storing a snapshot), and then:

- the standby accepts commands within 3 s of the kill (the time from the kill to each
  client's first acknowledged order after it is measured and printed);
- every order acknowledged by any leader so far is there, cancelled if its cancel was;
- the standby's state hash at takeover equals an independent full replay of the journal up
  to the seq it took over at;
- the audit (wallets against the transaction log, conservation per coin) passes;
- the leader record names the new leader, one epoch on.

The standby that took over is the leader of the next crash point, with a new standby beside
it. At the end the last leader is stopped with SIGINT and `perpx audit` and `perpx replay
--verify-snapshots` must pass on what it leaves. On SQLite and PostgreSQL journals.

PERPX_STANDBY_CRASH_POINTS sets the crash points per store (default 3).
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from perpx.api.keys import ApiKey, KeyStore
from perpx.core.engine import Engine
from perpx.instruments import served_instruments
from perpx.store import open_journal
from perpx.store.audit import audit_journal
from support.serving import Acked, Server, check_orders, free_port, random_order, signed

CRASH_POINTS = int(os.environ.get("PERPX_STANDBY_CRASH_POINTS", "3"))
CLIENTS = 3
TAKEOVER_LIMIT_S = 3.0


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


def _client(url: str, key: ApiKey, number: int, load: Load) -> None:
    """Place, cross and cancel signed orders; on a dead connection, reconnect and go on."""
    rng = random.Random(f"standby:{number}")
    mine: list[str] = []
    mark = 0.0
    with httpx.Client(base_url=url, timeout=5) as client:
        while not load.stop.is_set():
            if load.pause.is_set():
                load.idle[number].set()
                time.sleep(0.01)
                continue
            load.idle[number].clear()
            try:
                if not mark:
                    ticker = client.get("/v5/market/tickers?category=linear&symbol=BTCUSDT")
                    mark = float(ticker.json()["result"]["list"][0]["markPrice"])
                draw = rng.random()
                if draw < 0.3 and mine:
                    order_id = mine.pop(rng.randrange(len(mine)))
                    reply = signed(client, key, "POST", "/v5/order/cancel", {
                        "category": "linear", "symbol": "BTCUSDT", "orderId": order_id})
                    if reply["retCode"] == 0:
                        with load.acked.lock:
                            load.acked.orders[order_id] = (number, True)
                    continue
                params = random_order(rng, mark, market=draw < 0.4)
                sent = time.monotonic()
                reply = signed(client, key, "POST", "/v5/order/create", params)
                if reply["retCode"] == 0:
                    order_id = reply["result"]["orderId"]
                    with load.acked.lock:
                        load.acked.orders[order_id] = (number, False)
                    load.ack_times[number].append((sent, time.monotonic()))
                    if params["orderType"] == "Limit":
                        mine.append(order_id)
            except (httpx.HTTPError, OSError, ValueError, KeyError):
                time.sleep(0.02)  # the leader is gone: reconnect to whoever serves the port


def _pause(load: Load) -> None:
    load.pause.set()
    for idle in load.idle:
        assert idle.wait(30), "a client did not pause"


def _kill_leader(leader: Server, rng: random.Random, mode: str) -> float:
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


def _replayed_hash(location: str, seq: int) -> str:
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


def test_the_standby_takes_over_a_killed_leader_losing_nothing_acknowledged(
        journal_location: str | None, tmp_path: Path) -> None:
    data = tmp_path / "data"
    location = journal_location or str(data / "journal.db")
    store = KeyStore(data)
    keys = [store.create(demo_funds="100000", rate_limit=100_000) for _ in range(CLIENTS)]
    store.close()
    port = free_port()
    rng = random.Random(20261206)
    leader = Server(data, journal_location, port=port)
    load = Load()
    threads = [threading.Thread(target=_client, args=(leader.url, key, n, load))
               for n, key in enumerate(keys)]
    for thread in threads:
        thread.start()
    takeovers: list[tuple[str, float, float, int]] = []
    epoch = 0
    try:
        for point in range(CRASH_POINTS):
            mode = ("load", "snapshot")[point % 2]
            standby = Server(data, journal_location, port=port, role="standby")
            time.sleep(0.2)
            # While the leader lives the standby only follows: it neither writes nor serves.
            assert standby.proc.poll() is None and not standby.url
            assert not any("took the journal over" in line for line in standby.output)
            killed = _kill_leader(leader, rng, mode)
            standby.wait_serving(timeout_s=30)
            assert standby.url == leader.url  # the same host:port: clients just reconnect
            while len(load.first_acks_after(killed)) < CLIENTS:
                assert time.monotonic() - killed < 30, "clients found no new leader"
                time.sleep(0.01)
            firsts = load.first_acks_after(killed)
            assert max(firsts) < TAKEOVER_LIMIT_S, f"point {point}: {firsts}"
            _pause(load)
            assert standby.recovered is not None
            seq, _, _, digest = standby.recovered
            assert digest == _replayed_hash(location, seq), f"point {point}"
            check_orders(standby.url, keys, load.acked)
            journal = open_journal(location, readonly=True)
            report = audit_journal(served_instruments(), journal)
            record = journal.leader()  # type: ignore[attr-defined]
            journal.close()
            assert report.ok, (report.wallet_mismatches[:5], report.log_breaks[:5])
            assert record.holder == standby.url and record.epoch > epoch
            epoch = record.epoch
            takeovers.append((mode, min(firsts), max(firsts), seq))
            leader = standby
            load.pause.clear()
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=30)
    leader.proc.send_signal(signal.SIGINT)
    assert leader.proc.wait(timeout=60) == 0, "\n".join(leader.output)
    for tool in (["audit", "--journal", location],
                 ["replay", "--journal", location, "--verify-snapshots"]):
        done = subprocess.run([sys.executable, "-m", "perpx.cli", *tool], capture_output=True,
                              text=True, env=dict(os.environ, COLUMNS="200"), timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    kind = "PostgreSQL" if journal_location else "SQLite"
    print(f"\nstandby takeovers on {kind} ({len(load.acked.orders)} acknowledged orders): "
          + "; ".join(f"{mode} kill at seq {seq}: first order accepted {first:.2f} s after "
                      f"the kill, every client by {last:.2f} s"
                      for mode, first, last, seq in takeovers))
    assert len(load.acked.orders) > 0
