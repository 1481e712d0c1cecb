"""kill -9 the real `perpx serve` under signed REST load; nothing acknowledged may be lost.

Each crash point starts `perpx serve --port 0 --no-maker` on the same data folder (and
journal: SQLite, or a fresh PostgreSQL schema), drives it over loopback from a few client
threads that place, cross and cancel orders with signed requests, records every order whose
request was acknowledged (retCode 0), and kills the server with SIGKILL after a seeded random
time under load, or a seeded moment after it starts writing a snapshot. Then, offline:

- the history tables (in the journal's database: ``history.db`` beside a SQLite journal, the
  journal's schema on PostgreSQL) hold exactly the rows that an independent projection of the
  journal up to their high watermark gives, closed candles and funding rates included: no
  duplicate, no gap;
- the audit (wallets against the transaction log, conservation per coin) passes.

Then the server is started again and must report the seq and state hash of an independent
full replay of the journal (from a snapshot + the tail whenever a usable one exists), and
every acknowledged order must be visible in order/realtime or order/history, cancelled if
its cancel was acknowledged. The last restart is stopped with SIGINT, and `perpx audit` and
`perpx replay --verify-snapshots` must pass on what it leaves.

PERPX_SERVE_CRASH_POINTS sets the crash points per store (default 4).
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
from pathlib import Path
from typing import Any

import httpx
import msgspec

from perpx.api.keys import ApiKey, KeyStore
from perpx.core.engine import Engine
from perpx.instruments import served_instruments
from perpx.readmodels import FundingHistory, Klines
from perpx.readmodels.insurance import fund_changes
from perpx.rows import Candle, FundingRateRecord
from perpx.store import open_journal
from perpx.store.audit import audit_journal
from perpx.store.records import (
    ClosedPnlRecord,
    ExecutionRecord,
    LedgerRecord,
    OrderRecord,
    Projector,
)
from support.serving import Acked, Server, check_orders, random_order
from support.serving import signed as _signed
from support.stores import history_sql

CRASH_POINTS = int(os.environ.get("PERPX_SERVE_CRASH_POINTS", "4"))
CLIENTS = 3
def _client(url: str, key: ApiKey, number: int, seed: int, acked: Acked,
            stop: threading.Event) -> None:
    rng = random.Random(f"{seed}:{number}")
    mine: list[str] = []
    with httpx.Client(base_url=url, timeout=5) as client:
        try:
            ticker = client.get("/v5/market/tickers?category=linear&symbol=BTCUSDT").json()
            mark = float(ticker["result"]["list"][0]["markPrice"])
            while not stop.is_set():
                draw = rng.random()
                if draw < 0.3 and mine:
                    order_id = mine.pop(rng.randrange(len(mine)))
                    reply = _signed(client, key, "POST", "/v5/order/cancel", {
                        "category": "linear", "symbol": "BTCUSDT", "orderId": order_id})
                    if reply["retCode"] == 0:
                        with acked.lock:
                            acked.orders[order_id] = (number, True)
                    continue
                params = random_order(rng, mark, market=draw < 0.4)
                reply = _signed(client, key, "POST", "/v5/order/create", params)
                if reply["retCode"] == 0:
                    order_id = reply["result"]["orderId"]
                    with acked.lock:
                        acked.orders[order_id] = (number, False)
                    if params["orderType"] == "Limit":
                        mine.append(order_id)
        except (httpx.HTTPError, OSError):
            return  # the server was killed


def _load(server: Server, keys: list[ApiKey], seed: int, rng: random.Random,
          mode: str) -> Acked:
    """Drive the server from the clients, kill it (after a while or while it snapshots)."""
    acked = Acked()
    stop = threading.Event()
    threads = [threading.Thread(target=_client, args=(server.url, key, n, seed, acked, stop))
               for n, key in enumerate(keys)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + rng.uniform(0.4, 1.5)
    if mode == "snapshot":
        # Kill a seeded moment after a snapshot starts being written (or give up after 20 s).
        give_up = time.monotonic() + 20
        while time.monotonic() < give_up:
            try:
                line = server.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line.endswith("storing"):
                time.sleep(rng.uniform(0.0, 0.01))
                acked.killed_while_storing = True
                break
    else:
        time.sleep(max(0.0, deadline - time.monotonic()))
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    return acked


def _replay(location: str) -> tuple[Engine, list[Any]]:
    journal = open_journal(location)
    try:
        commands = list(journal.read(1))
    finally:
        journal.close()
    engine = Engine(served_instruments())
    for command in commands:
        engine.apply(command)
    return engine, commands


class _Rows:
    """What the history tables must hold: the projection of the journal up to a seq."""

    def __init__(self) -> None:
        self.order_status: dict[int, int] = {}
        self.exec_ids: set[str] = set()
        self.closed_ids: set[int] = set()
        self.entry_ids: set[str] = set()
        self.candles: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.rates: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.fund: dict[tuple[int, int], tuple[Any, ...]] = {}

    def candle_closed(self, source: str, symbol: str, interval: str, candle: Candle) -> None:
        self.candles[(symbol, source, interval, candle.start_ms)] = (
            candle.open, candle.high, candle.low, candle.close, str(candle.volume_lots),
            str(candle.turnover_atoms), candle.updated_ms)

    def funding_rate(self, record: FundingRateRecord) -> None:
        self.rates[(record.symbol, record.funding_rate_timestamp_ms)] = (
            record.funding_rate, record.mark_price_ticks, record.seq)

    def order_final(self, record: OrderRecord) -> None:
        self.order_status[record.order_id] = record.status

    def execution(self, record: ExecutionRecord) -> None:
        self.exec_ids.add(record.exec_id)

    def closed_pnl(self, record: ClosedPnlRecord) -> None:
        self.closed_ids.add(record.order_id)

    def ledger(self, record: LedgerRecord) -> None:
        # Ids, as the tables key them (a command may repeat one: the table keeps one row).
        self.entry_ids.add(record.entry_id)


def _check_history(location: str, commands: list[Any]) -> int:
    """Hold the history tables to an independent projection; return their watermark."""
    row = history_sql(location, "SELECT value FROM history_meta WHERE key = 'seq'")
    watermark = int(row[0][0]) if row else 0
    decoder = msgspec.msgpack.Decoder(OrderRecord)
    orders = {order_id: decoder.decode(body).status for order_id, body in
              history_sql(location, "SELECT order_id, record FROM orders")}
    executions = [r[0] for r in history_sql(location, "SELECT exec_id FROM executions")]
    closed = {r[0] for r in history_sql(location, "SELECT order_id FROM closed_pnl")}
    ledger = [r[0] for r in history_sql(location, "SELECT entry_id FROM ledger")]
    candles = {tuple(r[:4]): tuple(r[4:]) for r in history_sql(
        location, 'SELECT symbol, kind, "interval", start_ms, open, high, low, close, volume, '
                  "turnover, updated_ms FROM klines")}
    rates = {tuple(r[:2]): tuple(r[2:]) for r in history_sql(
        location, "SELECT symbol, ts_ms, rate, mark_price, seq FROM funding")}
    fund = {(r[0], r[1]): tuple(r[2:]) for r in history_sql(
        location, "SELECT seq, n, coin, ts_ms, change_atoms, balance_atoms FROM insurance")}
    expected = _Rows()
    specs = served_instruments()
    engine = Engine(specs)
    projector = Projector(specs, sink=expected)
    klines = Klines(specs, keep_closed=0, sink=expected)
    funding = FundingHistory(specs, keep=False, sink=expected)
    for command in commands:
        if command.seq > watermark:
            break
        events = engine.apply(command)
        for event in events:
            klines.apply(event)
            funding.apply(event)
        for change in fund_changes(events):
            expected.fund[(change.seq, change.n)] = (change.coin, change.ts_ms,
                                                    change.change_atoms, change.balance_atoms)
        projector.project(command, events)
    assert orders == expected.order_status
    assert len(executions) == len(set(executions)) and set(executions) == expected.exec_ids
    assert closed == expected.closed_ids
    assert len(ledger) == len(set(ledger)) and set(ledger) == expected.entry_ids
    assert candles == expected.candles
    assert rates == expected.rates
    assert fund == expected.fund
    return watermark


def test_kill9_perpx_serve_under_load_loses_nothing_acknowledged(
        journal_location: str | None, tmp_path: Path) -> None:
    data = tmp_path / "data"
    location = journal_location or str(data / "journal.db")
    store = KeyStore(data)
    keys = [store.create(demo_funds="100000", rate_limit=100_000) for _ in range(CLIENTS)]
    store.close()
    rng = random.Random(20240607)
    server = Server(data, journal_location)
    from_snapshot = 0
    acked_total = 0
    while_storing = 0
    for point in range(CRASH_POINTS):
        mode = ("load", "snapshot")[point % 2]
        acked = _load(server, keys, point, rng, mode)
        acked_total += len(acked.orders)
        while_storing += acked.killed_while_storing
        engine, commands = _replay(location)
        _check_history(location, commands)
        journal = open_journal(location)
        report = audit_journal(served_instruments(), journal)
        journal.close()
        assert report.ok, (report.wallet_mismatches[:5], report.log_breaks[:5])
        server = Server(data, journal_location)
        assert server.recovered is not None
        seq, snapshot_seq, tail, digest = server.recovered
        assert (seq, digest) == (engine.last_seq, engine.state_hash()), f"point {point}"
        assert snapshot_seq + tail == seq
        from_snapshot += snapshot_seq > 0
        check_orders(server.url, keys, acked)
    # A clean stop this time: the tools must agree with what is left.
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=60) == 0, "\n".join(server.output)
    for tool in (["audit", "--journal", location],
                 ["replay", "--journal", location, "--verify-snapshots"]):
        done = subprocess.run([sys.executable, "-m", "perpx.cli", *tool], capture_output=True,
                              text=True, env=dict(os.environ, COLUMNS="200"), timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    _check_history(location, _replay(location)[1])
    print(f"\n{CRASH_POINTS} crash points on {'PostgreSQL' if journal_location else 'SQLite'}"
          f" ({while_storing} as a snapshot was being stored; {acked_total} acknowledged "
          f"orders; {from_snapshot} restarts from a snapshot)")
    assert acked_total > 0
    assert from_snapshot > 0, "no restart used a snapshot"
