"""`perpx serve --projectors N`: the writer starts, restarts and stops its projectors (#15).

On both journals: with a PostgreSQL one the projector's tables are the schema
``<journal's>_projector_0`` of the same database.

A venue publishing on a fresh JetStream stream (`--bus nats://...`) starts one projector
(`--projectors 1`) into DATA/projector-0/history.db. Two keys trade through the API
(resting orders, crossing ones, cancels): the projector folds them into its own tables and
`/perpx/status` shows it with its seq. Killed -9, it is started again by the writer and
resumes; more trading follows. Stopping the venue (SIGTERM) stops the projector too, once
the writer has stopped and published its last batch: the projector folds up to the stream's
end before it stops, so its watermark is the writer's last published seq (the journal's
last seq) and its tables hold exactly the writer's rows (every history table, the paged
ones in the same order), with no catching up afterwards.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from perpx.api.keys import ApiKey, KeyStore
from perpx.bus import JetStreamBus
from perpx.store import open_history, open_journal, parse_location
from perpx.store.history_sql import SqlHistory
from support.projector import same_tables
from support.serving import Server, alive, signed

pytestmark = pytest.mark.service

_PID = re.compile(r"projector 0: started, pid (\d+)")


def watermark(location: str) -> int:
    """A PostgreSQL projector's committed seq, from its own tables (0 before they exist)."""
    import psycopg
    from psycopg import sql

    dsn, schema = parse_location(location)[1:]
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            rows = conn.execute("SELECT value FROM history_meta WHERE key = 'seq'").fetchall()
    except psycopg.Error:  # not created yet
        return 0
    return int(rows[0][0]) if rows else 0


def pids(writer: Server) -> list[int]:
    return [int(found) for found in _PID.findall("\n".join(writer.output))]


def status(url: str) -> dict[str, Any]:
    reply = httpx.get(url + "/perpx/status", timeout=10).json()
    assert reply["retCode"] == 0, reply
    result: dict[str, Any] = reply["result"]
    return result


def trade(url: str, alice: ApiKey, bob: ApiKey, rounds: int) -> None:
    """Resting orders, crossing pairs and cancels from two keys."""
    with httpx.Client(base_url=url, timeout=10) as client:
        ticker = client.get("/v5/market/tickers", params={
            "category": "linear", "symbol": "BTCUSDT"}).json()["result"]["list"][0]
        mark = int(float(ticker["markPrice"]))
        for number in range(rounds):
            price = str(mark + number % 5)
            sell = {"category": "linear", "symbol": "BTCUSDT", "side": "Sell", "qty": "0.001",
                    "orderType": "Limit", "price": price, "timeInForce": "GTC"}
            assert signed(client, alice, "POST", "/v5/order/create", sell)["retCode"] == 0
            buy = dict(sell, side="Buy")
            assert signed(client, bob, "POST", "/v5/order/create", buy)["retCode"] == 0
            resting = dict(buy, price=str(mark - 50 - number))
            placed = signed(client, bob, "POST", "/v5/order/create", resting)
            assert placed["retCode"] == 0, placed
            if number % 2:
                cancel = {"category": "linear", "symbol": "BTCUSDT",
                          "orderId": placed["result"]["orderId"]}
                assert signed(client, bob, "POST", "/v5/order/cancel", cancel)["retCode"] == 0


def folded_past(writer: Server, seq: int, *, sqlite: bool, history_at: str,
                timeout_s: float = 60) -> int:
    """Wait until the projector's committed seq is at `seq` or past it.

    `/perpx/status` shows it for a SQLite projector; a PostgreSQL one's is read from its
    tables here (status leaves it out: a connection per request is not cheap).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        projectors = status(writer.url)["processes"]["projectors"]
        shown = projectors["list"][0]["seq"]
        if not sqlite:
            assert shown == ""
            shown = str(watermark(history_at))
        if shown and int(shown) >= seq:
            return int(shown)
        assert time.monotonic() < deadline, f"projector at {shown!r}, not {seq}:\n" + \
            "\n".join(writer.output)
        time.sleep(0.1)


def test_serve_starts_restarts_and_stops_its_projector(
        tmp_path: Path, nats_url: str, stream_name: str, journal_location: str | None,
        projector_schema: None) -> None:
    data = tmp_path / "data"
    writer = Server(data, journal_location, extra=(
        "--bus", nats_url, "--bus-stream", stream_name, "--projectors", "1"))
    keys = KeyStore(data)
    alice = keys.create(demo_funds="100000", rate_limit=10_000)
    bob = keys.create(demo_funds="100000", rate_limit=10_000)
    if journal_location is None:
        journal_at, history_at = str(data / "journal.db"), str(data / "projector-0/history.db")
    else:
        journal_at = journal_location
        history_at = f"{journal_location}_projector_0"  # ...?schema=NAME_projector_0
    try:
        trade(writer.url, alice, bob, 12)
        first = folded_past(writer, int(status(writer.url)["seq"]),
                            sqlite=journal_location is None, history_at=history_at)
        shown = status(writer.url)["processes"]["projectors"]
        assert shown["count"] == "1" and shown["restarts"] == "0", shown
        [pid] = pids(writer)
        assert alive(pid)

        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while len(pids(writer)) < 2 or not any(
                "projector 0: " in line and "following from seq" in line
                for line in writer.output[-50:]):
            assert time.monotonic() < deadline, "\n".join(writer.output)
            time.sleep(0.1)
        restarted = pids(writer)[-1]
        assert restarted != pid and not alive(pid) and alive(restarted)
        trade(writer.url, alice, bob, 8)
        assert folded_past(writer, int(status(writer.url)["seq"]),
                           sqlite=journal_location is None, history_at=history_at) > first
        assert status(writer.url)["processes"]["projectors"]["restarts"] == "1"

        writer.stop()  # SIGTERM: the projector goes with the venue
        # uvicorn raises the signal again after its shutdown (which closed the venue).
        assert writer.proc.returncode in (0, -signal.SIGTERM), "\n".join(writer.output)
        assert not alive(restarted)
        # Stopped by the venue as it closed (not only by its death), after the writer: it
        # drained the stream to its end and said where it stopped.
        deadline = time.monotonic() + 10  # our reader may trail the pipe a little
        while not any("projector 0: projector stopped at seq" in line
                      for line in writer.output):
            assert time.monotonic() < deadline, "\n".join(writer.output)
            time.sleep(0.05)
        [stopped_at] = [int(line.rsplit(" ", 1)[1]) for line in writer.output
                        if "projector 0: projector stopped at seq" in line]
        assert any(f"projector 0: projector: drained to the stream's end, seq {stopped_at}"
                   in line for line in writer.output), "\n".join(writer.output)
    finally:
        writer.kill()
        keys.close()

    async def stream_end() -> int:
        bus = JetStreamBus(nats_url, stream_name)
        try:
            return await bus.last_seq()
        finally:
            await bus.close()

    published = asyncio.run(stream_end())
    journal = open_journal(journal_at, readonly=True)
    journaled = journal.last_seq()
    journal.close()
    reference = open_history(journal_at)
    ours = open_history(history_at, beside_journal=False)
    try:
        assert isinstance(ours, SqlHistory) and isinstance(reference, SqlHistory)
        # The writer published everything it journaled, and the projector folded all of it.
        assert published == journaled == reference.high_watermark
        assert ours.high_watermark == stopped_at == published
        same_tables(ours, reference)
    finally:
        ours.close()
        reference.close()

