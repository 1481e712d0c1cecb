"""kill -9 a real `perpx serve --role projector` mid-stream; its rows must equal the writer's.

The writer is the whole service (journal, in-process history tables) publishing each durable
batch on a fresh JetStream stream; the projector is a separate process following that stream
into tables of its own (a SQLite file, or a PostgreSQL schema of its own), checkpointing its
read side every 150 commands. While the writer trades (deposits, crossing orders, cancels,
market orders, prices; a clock 20 s per command, so candles close and funding settles), the
projector is killed with SIGKILL at seeded random moments, also while it re-folds after a
restart, and started again. At the end it catches up, is stopped cleanly, and every history
table (orders, executions, closed P&L, transaction log, candles, funding rates) must hold
exactly the rows the writer's own process wrote, the paged ones in the same order.

A second test prunes the stream under a projector: it must exit 1 naming the gap, and write
nothing past it.

PERPX_PROJECTOR_CRASH_POINTS sets the kills per backend (default 5).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from perpx.bus import JetStreamBus
from perpx.service import ExchangeService
from perpx.store import open_history, open_journal, parse_location
from perpx.store.history_sql import SqlHistory
from support.projector import flow, same_tables, submit, writer

pytestmark = pytest.mark.service

CRASH_POINTS = int(os.environ.get("PERPX_PROJECTOR_CRASH_POINTS", "5"))
_START = re.compile(r"rows at seq (\d+), read side from checkpoint (\d+)")


class Projector:
    """One `perpx serve --role projector` process and the lines it printed."""

    def __init__(self, nats_url: str, stream: str, history: str) -> None:
        args = [sys.executable, "-m", "perpx.cli", "serve", "--role", "projector",
                "--bus", nats_url, "--bus-stream", stream, "--history", history,
                "--snapshot-every", "150", "--snapshot-seconds", "0"]
        env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def started(self) -> tuple[int, int] | None:
        """(rows' seq, checkpoint's seq) it started from, once it said so."""
        for line in self.lines:
            found = _START.search(line)
            if found:
                return int(found[1]), int(found[2])
        return None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._reader.join(5)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(60)
        self._reader.join(5)
        return code

    def output(self) -> str:
        return "\n".join(self.lines)


def watermark(location: str) -> int:
    """The projector's committed seq, read from its own tables (0 before they exist)."""
    kind, target, schema = parse_location(location)
    try:
        if kind == "sqlite":
            with contextlib.closing(sqlite3.connect(target)) as db:
                rows = db.execute("SELECT value FROM history_meta WHERE key = 'seq'").fetchall()
        else:
            import psycopg
            from psycopg import sql

            with psycopg.connect(target, autocommit=True) as conn:
                conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
                rows = conn.execute("SELECT value FROM history_meta WHERE key = 'seq'"
                                    ).fetchall()
    except Exception:  # not created yet
        return 0
    return int(rows[0][0]) if rows else 0


async def caught_up(location: str, seq: int, projector: Projector,
                    timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while watermark(location) < seq:
        assert projector.proc.poll() is None, f"projector died:\n{projector.output()}"
        assert time.monotonic() < deadline, (
            f"projector at {watermark(location)}, not {seq}:\n{projector.output()}")
        await asyncio.sleep(0.1)


@pytest.fixture(params=["sqlite", "postgres"])
def places(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(the writer's journal location, the projector's history location) on one backend."""
    if request.param == "sqlite":
        yield str(tmp_path / "journal.db"), str(tmp_path / "projector" / "history.db")
        return
    dsn = request.getfixturevalue("postgres_dsn")
    schema = request.getfixturevalue("pg_schema")
    yield f"{dsn}?schema={schema}", f"{dsn}?schema={schema}_projector"
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
            sql.Identifier(f"{schema}_projector")))


def refolded(starts: list[tuple[int, int]]) -> bool:
    """Whether a restart resumed with its rows past its read-side checkpoint (a re-fold)."""
    return any(checkpoint < rows for rows, checkpoint in starts)


def test_kill9_projector_mid_stream_then_restart_gives_the_writers_rows(
        places: tuple[str, str], nats_url: str, stream_name: str) -> None:
    journal_at, history_at = places
    if "://" not in history_at:
        Path(history_at).parent.mkdir()
    commands = flow(6000, seed=23)
    rng = random.Random(f"projector-kill9:{journal_at[:8]}")
    starts: list[tuple[int, int]] = []
    killed_at: list[int] = []

    async def trade(service: ExchangeService) -> None:
        for start in range(0, len(commands), 40):
            await submit(service, commands[start:start + 40])
            await asyncio.sleep(0.05)  # a paced writer, so the kills fall mid-stream

    async def started(projector: Projector) -> int:
        """Wait until a (re)started projector has said where it resumes; its rows' seq."""
        deadline = time.monotonic() + 60
        while projector.started() is None:
            assert projector.proc.poll() is None, projector.output()
            assert time.monotonic() < deadline, projector.output()
            await asyncio.sleep(0.02)
        found = projector.started()
        assert found is not None
        starts.append(found)
        return found[0]

    async def run() -> None:
        service = writer(open_journal(journal_at), open_history(journal_at),
                         JetStreamBus(nats_url, stream_name))
        writing = asyncio.create_task(trade(service))
        projector = Projector(nats_url, stream_name, history_at)
        try:
            # At least CRASH_POINTS kills, and more (up to three times as many) until a restart
            # has resumed behind its rows: whether a kill lands between a read-side checkpoint
            # and the rows' commit is timing, and a projector runs ahead of its commits.
            for kill in range(3 * CRASH_POINTS):
                rows = await started(projector)
                if kill >= CRASH_POINTS and refolded(starts):
                    break
                if rng.random() < 0.3:
                    # Soon after the restart: while it re-folds from its checkpoint.
                    await asyncio.sleep(rng.uniform(0.0, 0.2))
                else:
                    # Mid-stream: some way past where it resumed, mostly while it works
                    # through the backlog its downtime left.
                    target = min(rows + rng.randint(30, 600), len(commands))
                    await caught_up(history_at, target, projector)
                    await asyncio.sleep(rng.uniform(0.0, 0.05))
                projector.kill()
                killed_at.append(watermark(history_at))
                await asyncio.sleep(rng.uniform(0.2, 1.0))  # the writer goes on meanwhile
                projector = Projector(nats_url, stream_name, history_at)
            await writing
            if len(starts) == len(killed_at):  # the loop ran out: this start not yet seen
                await started(projector)
            await caught_up(history_at, service.engine.last_seq, projector)
            assert projector.stop() == 0, projector.output()
        finally:
            writing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writing
            if projector.proc.poll() is None:
                projector.kill()
            await service.close()

    asyncio.run(run())
    reference = open_history(journal_at)
    ours = open_history(history_at, beside_journal=False)
    try:
        assert isinstance(ours, SqlHistory) and isinstance(reference, SqlHistory)
        assert ours.high_watermark == reference.high_watermark
        same_tables(ours, reference)
    finally:
        ours.close()
        reference.close()
    assert len(killed_at) >= CRASH_POINTS
    assert len(set(killed_at)) > 1, killed_at  # killed at several different seqs
    # Restarts resumed between a checkpoint and the rows: the re-fold path ran.
    assert refolded(starts), starts


def test_a_pruned_stream_stops_the_projector_loudly(
        tmp_path: Path, nats_url: str, stream_name: str) -> None:
    history_at = str(tmp_path / "projector.db")
    journal_at = str(tmp_path / "journal.db")
    commands = flow(1200, seed=29)

    async def publish(start: int, count: int) -> None:
        # The writer (restarted on its journal for the second part) publishes them.
        service = writer(open_journal(journal_at), open_history(journal_at),
                         JetStreamBus(nats_url, stream_name))
        await submit(service, commands[start:start + count])
        await service.close()

    async def prune(keep: int) -> None:
        bus = JetStreamBus(nats_url, stream_name)
        js = await bus._jetstream()
        await js.purge_stream(stream_name, keep=keep)
        await bus.close()

    # A projector follows the first 600 commands, and is stopped.
    asyncio.run(publish(0, 600))
    first = Projector(nats_url, stream_name, history_at)
    deadline = time.monotonic() + 60
    while watermark(history_at) < 600:
        assert first.proc.poll() is None and time.monotonic() < deadline, first.output()
        time.sleep(0.1)
    assert first.stop() == 0, first.output()
    # The writer goes on; the stream keeps only its last few messages.
    asyncio.run(publish(600, 600))
    asyncio.run(prune(keep=3))

    second = Projector(nats_url, stream_name, history_at)
    code = second.proc.wait(60)
    second._reader.join(5)
    assert code == 1, second.output()
    assert "event gap: expected seq 601" in second.output()
    assert "missing" in second.output()
    assert watermark(history_at) == 600  # nothing written past the hole
