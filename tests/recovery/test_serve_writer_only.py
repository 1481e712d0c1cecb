"""The split layout's writer does only the writing (issue #15, item 1), on both journals.

`perpx serve --gateways 1 --projectors 1 --bus nats://...`: the writer sequences, applies,
journals, acknowledges and publishes; it folds no read side and writes no history rows.
Projector 0 writes the history tables, and the gateway reads them: an order acknowledged
through the gateway is in `/v5/order/history` and its fill in `/v5/execution/list` on the
very next request (the gateway waits for the projector's watermark to pass the seq its
follower shows). Killed -9 while orders flow, the projector is restarted by the writer and
its tables end up holding exactly the rows of an independent projection of the stream; the
writer, stopped and started again, recovers without any history.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from perpx.api.keys import ApiKey, KeyStore
from perpx.bus import JetStreamBus
from perpx.instruments import served_instruments
from perpx.roles.projector import HistoryProjector, project
from perpx.store import open_history, open_journal, parse_location
from perpx.store.history_sql import SqlHistory
from perpx.store.history_sqlite import SqliteHistory
from support.projector import same_tables
from support.serving import Server, alive, signed

pytestmark = pytest.mark.service

_PID = re.compile(r"projector 0: started, pid (\d+)")
LINEAR = {"category": "linear", "symbol": "BTCUSDT"}


def writer_history_rows(data: Path, journal_location: str | None) -> int | None:
    """Rows in the writer's own history tables (None: it never even created them)."""
    if journal_location is None:
        return None if not (data / "history.db").exists() else _count(
            open_history(str(data / "journal.db")))
    import psycopg
    from psycopg import sql

    dsn, schema = parse_location(journal_location)[1:]
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = conn.execute("SELECT to_regclass(%s)", (f"{schema}.orders",)).fetchone()
        if found is None or found[0] is None:
            return None
        return int(conn.execute(sql.SQL("SELECT count(*) FROM {}.executions").format(
            sql.Identifier(schema))).fetchone()[0])  # type: ignore[index]


def _count(history: object) -> int:
    assert isinstance(history, SqlHistory)
    try:
        return int(history._executor.submit(
            lambda: history._execute("SELECT count(*) FROM executions")[0][0]).result())
    finally:
        history.close()


def mark(client: httpx.Client, symbol: str = "BTCUSDT") -> int:
    ticker = client.get("/v5/market/tickers", params=dict(LINEAR, symbol=symbol)).json()
    return int(float(ticker["result"]["list"][0]["markPrice"]))


def cross(client: httpx.Client, alice: ApiKey, bob: ApiKey, step: int) -> tuple[str, str]:
    """Alice rests a sell near the mark, Bob buys it: return both order ids (both filled)."""
    sell = {**LINEAR, "side": "Sell", "qty": "0.001", "orderType": "Limit",
            "price": str(mark(client) + step % 5), "timeInForce": "GTC"}
    made = signed(client, alice, "POST", "/v5/order/create", sell)
    assert made["retCode"] == 0, made
    took = signed(client, bob, "POST", "/v5/order/create", dict(sell, side="Buy"))
    assert took["retCode"] == 0, took
    return made["result"]["orderId"], took["result"]["orderId"]


def read_back(client: httpx.Client, key: ApiKey, order_id: str) -> None:
    """The filled order and its execution, read at once (no wait) through the gateway."""
    history = signed(client, key, "GET", "/v5/order/history", {**LINEAR, "orderId": order_id})
    assert history["retCode"] == 0, history
    assert [row["orderStatus"] for row in history["result"]["list"]] == ["Filled"], history
    fills = signed(client, key, "GET", "/v5/execution/list", {**LINEAR, "orderId": order_id})
    assert fills["retCode"] == 0, fills
    assert [row["orderId"] for row in fills["result"]["list"]] == [order_id], fills


def batches(client: httpx.Client, key: ApiKey) -> None:
    """The batches and cancel-all through the gateway: each item's answer, in request order.

    The gateway sends a batch to the writer as one request (`GatewayService.submit_all`).
    """
    low = str(mark(client) * 98 // 100)
    rest = {**LINEAR, "side": "Buy", "qty": "0.001", "orderType": "Limit", "price": low,
            "timeInForce": "GTC"}
    made = signed(client, key, "POST", "/v5/order/create-batch", {"category": "linear",
                  "request": [dict(rest, orderLinkId="wb1"), dict(rest, orderLinkId="wb1"),
                              dict(rest, orderLinkId="wb2")]})
    assert made["retCode"] == 0, made
    assert [c["code"] for c in made["retExtInfo"]["list"]] == [0, 110072, 0], made
    first, _, second = (entry["orderId"] for entry in made["result"]["list"])
    amended = signed(client, key, "POST", "/v5/order/amend-batch", {"category": "linear",
                     "request": [dict(LINEAR, orderLinkId="wb1", qty="0.002"),
                                 dict(LINEAR, orderId=second, qty="0.002")]})
    assert amended["retCode"] == 0, amended
    assert [(e["orderId"], e["orderLinkId"]) for e in amended["result"]["list"]] == [
        (first, "wb1"), (second, "wb2")], amended
    gone = signed(client, key, "POST", "/v5/order/cancel-batch", {"category": "linear",
                  "request": [dict(LINEAR, orderId=first), dict(LINEAR, orderId=first)]})
    assert [(e["orderId"], e["orderLinkId"]) for e in gone["result"]["list"]] == [
        (first, "wb1"), (first, "")], gone
    assert [c["code"] for c in gone["retExtInfo"]["list"]] == [0, 110001], gone
    everything = signed(client, key, "POST", "/v5/order/cancel-all", LINEAR)
    assert everything["result"] == {"list": [{"orderId": second, "orderLinkId": "wb2"}],
                                    "success": "1"}, everything
    nothing = signed(client, key, "POST", "/v5/order/cancel-all", LINEAR)
    assert nothing["result"] == {"list": [], "success": "1"}, nothing


def cancel_many(client: httpx.Client, key: ApiKey) -> None:
    """Cancel-all by settle coin of 510 orders on two symbols names each one's link id.

    The gateway's read side keeps an account's newest 500 closed orders: the first ten the
    cancel closed are read from projector 0's history tables (`order._links`).
    """
    placed: list[tuple[str, str]] = []
    for symbol, qty, count in (("BTCUSDT", "0.001", 300), ("ETHUSDT", "0.01", 210)):
        rest = {"symbol": symbol, "side": "Buy", "qty": qty, "orderType": "Limit",
                "price": str(mark(client, symbol) * 90 // 100), "timeInForce": "GTC"}
        for start in range(0, count, 20):
            links = [f"{symbol}-{n}" for n in range(start, min(start + 20, count))]
            made = signed(client, key, "POST", "/v5/order/create-batch", {
                "category": "linear", "request": [dict(rest, orderLinkId=link)
                                                  for link in links]})
            assert [c["code"] for c in made["retExtInfo"]["list"]] == [0] * len(links), made
            placed += [(e["orderId"], e["orderLinkId"]) for e in made["result"]["list"]]
    gone = signed(client, key, "POST", "/v5/order/cancel-all",
                  {"category": "linear", "settleCoin": "USDT"})
    assert gone["retCode"] == 0, gone
    assert [(e["orderId"], e["orderLinkId"]) for e in gone["result"]["list"]] == placed


def test_writer_only_history_by_projector_kill9(
        tmp_path: Path, nats_url: str, stream_name: str, journal_location: str | None,
        projector_schema: None) -> None:
    data = tmp_path / "data"
    split = ("--bus", nats_url, "--bus-stream", stream_name, "--gateways", "1",
             "--projectors", "1", "--snapshot-every", "40")
    writer = Server(data, journal_location, extra=split)
    again: Server | None = None
    keys = KeyStore(data)
    alice = keys.create(demo_funds="100000", rate_limit=10_000)
    bob = keys.create(demo_funds="100000", rate_limit=10_000)
    if journal_location is None:
        journal_at, history_at = str(data / "journal.db"), str(data / "projector-0/history.db")
    else:
        journal_at = journal_location
        history_at = f"{journal_location}_projector_0"
    try:
        # The gateway's relayed "serving" line can come before the writer's own: read on.
        said = time.monotonic() + 30
        while not any("writer only" in line for line in writer.output):
            writer.next_line(said)  # fails once the time is up
        with httpx.Client(base_url=writer.url, timeout=10) as client:
            for number in range(10):
                made, took = cross(client, alice, bob, number)
                read_back(client, bob, took)
                read_back(client, alice, made)
            batches(client, alice)
            cancel_many(client, alice)

        # Kill -9 the projector while orders flow (mid-batch, as likely as not).
        [pid] = [int(found) for found in _PID.findall("\n".join(writer.output))]
        flowing = threading.Event()

        def trade() -> None:
            with httpx.Client(base_url=writer.url, timeout=10) as client:
                for number in range(40):
                    cross(client, alice, bob, number)
                    flowing.set()

        trader = threading.Thread(target=trade)
        trader.start()
        flowing.wait(30)
        os.kill(pid, signal.SIGKILL)
        trader.join(120)
        deadline = time.monotonic() + 60
        while not any("projector 0: " in line and "following from seq" in line
                      for line in writer.output[-80:]) or len(_PID.findall(
                          "\n".join(writer.output))) < 2:
            assert time.monotonic() < deadline, "\n".join(writer.output)
            time.sleep(0.1)
        assert not alive(pid)
        # Restarted: the gateway reads its own writes from the new projector's tables.
        with httpx.Client(base_url=writer.url, timeout=10) as client:
            for number in range(5):
                made, took = cross(client, alice, bob, number)
                read_back(client, bob, took)
                read_back(client, alice, made)
        assert writer_history_rows(data, journal_location) is None, \
            "the writer wrote history rows"
        writer.stop()
        assert writer.proc.returncode in (0, -signal.SIGTERM), "\n".join(writer.output)

        # The writer restarts without any history (from its snapshot and the journal's tail).
        again = Server(data, journal_location, extra=split)
        assert again.recovered is not None and again.recovered[1] > 0, again.output
        # Its gateway starts from the projector's checkpoint over an older engine snapshot.
        assert any("gateway: the history's checkpoint" in line for line in again.output), \
            "\n".join(again.output)
        with httpx.Client(base_url=again.url, timeout=10) as client:
            made, took = cross(client, alice, bob, 0)
            read_back(client, bob, took)
        again.stop()
        assert writer_history_rows(data, journal_location) is None
    finally:
        writer.kill()
        if again is not None:
            again.kill()
        keys.close()

    # The projector's rows are those of an independent projection of the whole stream.
    journal = open_journal(journal_at, readonly=True)
    last = journal.last_seq()
    journal.close()
    reference = SqliteHistory(tmp_path / "reference.db")
    ours = open_history(history_at, beside_journal=False)

    async def catch_up(history: SqlHistory) -> None:
        bus = JetStreamBus(nats_url, stream_name)
        try:
            await project(bus, HistoryProjector(served_instruments(), history), until=last)
        finally:
            await bus.close()

    try:
        assert isinstance(ours, SqlHistory)
        asyncio.run(catch_up(reference))
        if ours.high_watermark < last:  # the venue's last ticks, after the projector's stop
            asyncio.run(catch_up(ours))
        assert ours.high_watermark == reference.high_watermark == last
        same_tables(ours, reference)
    finally:
        ours.close()
        reference.close()
