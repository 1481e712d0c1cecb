"""History never loses rows (issue #12, item 6): a failed batch is retried before later rows,
the watermark covers committed rows only, and a lost PostgreSQL connection is replaced."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest

from perpx.core import OrderType, PlaceOrder, Side
from perpx.core.commands import Command, Deposit, IndexPrice, Tick
from perpx.core.engine import Engine
from perpx.instruments import load_instruments
from perpx.store import open_history
from perpx.store.history_postgres import PostgresHistory
from perpx.store.history_sql import HistoryUnavailable, SqlHistory
from perpx.store.history_sqlite import SqliteHistory
from perpx.store.records import Projector
from support.stores import history_rows


def _commands() -> list[Command]:
    commands: list[Command] = [Deposit(1, 1, 1001, "USDT", 10**13),
                               Deposit(2, 2, 1002, "USDT", 10**13),
                               IndexPrice(3, 1000, "BTCUSDT", 650000), Tick(4, 1000)]
    for i in range(10):
        seq = len(commands) + 1
        commands.append(PlaceOrder(seq, 2000 + i, 1001, "BTCUSDT", Side.BUY, OrderType.LIMIT,
                                   10, 650000))
        commands.append(PlaceOrder(seq + 1, 2000 + i, 1002, "BTCUSDT", Side.SELL,
                                   OrderType.MARKET, 10))
    return commands


class _Feeder:
    """Project the commands into a history, a slice at a time (as the service does)."""

    def __init__(self, history: SqlHistory) -> None:
        specs = load_instruments()
        self.history = history
        self.engine = Engine(specs)
        self.projector = Projector(specs, history)
        self.commands = _commands()

    def project(self, upto: int) -> None:
        for command in self.commands[self.engine.last_seq:upto]:
            self.projector.project(command, self.engine.apply(command))
            self.history.projected(command.seq)


def _reference() -> dict[str, list[tuple[Any, ...]]]:
    history = SqliteHistory(None)
    feeder = _Feeder(history)
    feeder.project(len(feeder.commands))
    rows = history_rows(history)
    history.close()
    return rows


def _committed(history: SqlHistory) -> int:
    return history._executor.submit(history._read_watermark).result()


def _wait_for(history: SqlHistory, seq: int) -> None:
    deadline = time.monotonic() + 20
    while history.high_watermark < seq:  # the retry timer writes the rows held back
        assert time.monotonic() < deadline, f"watermark stuck at {history.high_watermark}"
        time.sleep(0.02)


def test_a_failed_batch_is_written_before_the_next_and_the_watermark_waits(
        location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding: a failed history batch followed by a committed later one lost its rows for
    good (flush set the watermark before the commit, and the next batch's jumped over it)."""
    history = open_history(location)
    assert isinstance(history, SqlHistory)
    feeder = _Feeder(history)
    feeder.project(8)
    history.flush().result()
    assert history.high_watermark == 8
    error = history._lost_errors()[0]
    real = history._executemany

    def full(sql: str, rows: list[tuple[Any, ...]]) -> None:
        raise error("database or disk is full")

    monkeypatch.setattr(history, "_executemany", full)
    feeder.project(16)
    with pytest.raises(HistoryUnavailable):
        history.flush().result()
    # Readers and recovery see only what is committed; queries refuse to answer without it.
    assert history.high_watermark == 8 == _committed(history)
    with pytest.raises(HistoryUnavailable):
        asyncio.run(history.run(lambda: history.orders(1002)))
    monkeypatch.setattr(history, "_executemany", real)
    feeder.project(len(feeder.commands))
    with contextlib.suppress(HistoryUnavailable):  # still backing off: the timer retries
        history.flush().result()
    _wait_for(history, len(feeder.commands))
    assert _committed(history) == len(feeder.commands)
    assert history_rows(history) == _reference()
    assert asyncio.run(history.run(lambda: history.orders(1002))).records
    history.close()


def test_rows_held_back_are_written_at_close_or_re_projected(
        location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A history closed while its writes fail keeps its committed watermark: the rows past it
    are re-projected from the journal at the next start, never skipped."""
    history = open_history(location)
    assert isinstance(history, SqlHistory)
    feeder = _Feeder(history)
    feeder.project(6)
    history.flush().result()
    error = history._lost_errors()[0]

    def full(sql: str, rows: list[tuple[Any, ...]]) -> None:
        raise error("database or disk is full")

    monkeypatch.setattr(history, "_executemany", full)
    feeder.project(12)
    history.close()  # logs the rows unwritten; does not raise
    again = open_history(location)
    assert again.high_watermark == 6
    again.close()


def test_too_many_rows_held_back_stop_the_writes_until_a_restart(
        location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory stays bounded in a long outage, and still no row is skipped: past the cap the
    watermark stays frozen (a restart re-projects past it) and queries refuse."""
    history = open_history(location)
    assert isinstance(history, SqlHistory)
    monkeypatch.setattr(history, "max_backlog_rows", 5)
    feeder = _Feeder(history)
    feeder.project(4)
    history.flush().result()
    error = history._lost_errors()[0]
    real = history._executemany

    def full(sql: str, rows: list[tuple[Any, ...]]) -> None:
        raise error("database or disk is full")

    monkeypatch.setattr(history, "_executemany", full)
    feeder.project(len(feeder.commands))
    with pytest.raises(HistoryUnavailable):
        history.flush().result()
    monkeypatch.setattr(history, "_executemany", real)
    history.flush().result()  # dropped, not written: the watermark must not move
    assert history.high_watermark == 4 == _committed(history)
    with pytest.raises(HistoryUnavailable):
        asyncio.run(history.run(lambda: history.orders(1002)))
    history.close()


def _terminate(dsn: str, history: PostgresHistory) -> None:
    import psycopg

    assert history._db is not None
    pid = history._db.info.backend_pid
    with psycopg.connect(dsn, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


def test_a_killed_postgres_history_connection_reconnects(postgres_dsn: str,
                                                        pg_schema: str) -> None:
    """Finding: a lost PostgreSQL history connection never reconnected (order/history
    answered 10016 until a restart). Queries during the outage fail cleanly (the API maps
    the error to 10016) and succeed again after; the batch is retried, no row is lost."""
    history = PostgresHistory(postgres_dsn, pg_schema)
    feeder = _Feeder(history)
    feeder.project(8)
    history.flush().result()
    _terminate(postgres_dsn, history)
    with pytest.raises(HistoryUnavailable):
        asyncio.run(history.run(lambda: history.orders(1002)))
    deadline = time.monotonic() + 20
    while True:  # reconnected at the next attempt
        try:
            assert asyncio.run(history.run(lambda: history.orders(1002))).records
            break
        except HistoryUnavailable:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    _terminate(postgres_dsn, history)
    feeder.project(len(feeder.commands))
    with pytest.raises(HistoryUnavailable):
        history.flush().result()  # the batch met the dead connection
    assert history.high_watermark == 8
    _wait_for(history, len(feeder.commands))
    assert _committed(history) == len(feeder.commands)
    assert history_rows(history) == _reference()
    history.close()
