"""`perpx replay` and `perpx audit` on a real journal, and the audit's checks catching errors."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from perpx.cli import app
from perpx.core.commands import Deposit
from perpx.core.engine import Engine
from perpx.instruments import served_instruments
from perpx.sequencer import Sequencer
from perpx.store import open_journal, open_snapshots, parse_location
from perpx.store.audit import AuditReport, _check_coins, _check_wallets, audit_journal
from perpx.store.loadflow import order_flow
from perpx.store.snapshotter import Snapshotter
from perpx.store.sqlite import readonly_uri


def _journal(path: Path, count: int = 1200) -> str:
    url = f"sqlite:///{path}"

    async def go() -> None:
        journal, store = open_journal(url), open_snapshots(url)
        engine = Engine(served_instruments())
        sequencer = Sequencer(engine, journal)
        snapshotter = Snapshotter(engine, store, lambda: sequencer.durable_seq,
                                  every_commands=400, fork=False)
        sequencer.subscribe(snapshotter)
        for command in order_flow(count, seed=9):
            await sequencer.submit(command)
            snapshotter.wait()
        await sequencer.close()
        store.close()

    asyncio.run(go())
    return url


def test_replay_prints_seq_speed_and_hash_and_verifies_snapshots(tmp_path: Path) -> None:
    url = _journal(tmp_path / "j.db")
    result = CliRunner().invoke(app, ["replay", "--journal", url, "--verify-snapshots"])
    assert result.exit_code == 0, result.output
    journal = open_journal(url)
    expected = Engine(served_instruments())
    for command in journal.read():
        expected.apply(command)
    assert "last seq 1,200" in result.output and "commands/s" in result.output
    assert f"state hash {expected.state_hash()}" in result.output
    assert "snapshots verified: 3" in result.output
    store = open_snapshots(url)
    store.corrupt_for_tests(store.headers()[0].seq)
    store.close()
    broken = CliRunner().invoke(app, ["replay", "--journal", url, "--verify-snapshots"])
    assert broken.exit_code == 1 and "does not load" in broken.output


def test_audit_passes_on_a_real_journal(tmp_path: Path) -> None:
    _journal(tmp_path / "j.db")
    result = CliRunner().invoke(app, ["audit", "--journal", str(tmp_path / "j.db")])
    assert result.exit_code == 0, result.output
    assert "mismatches: 0" in result.output and "conserved" in result.output


def test_audit_checks_catch_a_wallet_off_by_one_atom(tmp_path: Path) -> None:
    url = _journal(tmp_path / "j.db", 300)
    report = audit_journal(served_instruments(), open_journal(url))
    assert report.ok and report.wallets_checked > 20
    account = report.engine.clearing.accounts[3]
    account.balances["USDT"] += 1  # what a bug in the core would look like
    logged = {(a.account_id, coin): b - (a.account_id == 3)
              for a in report.engine.clearing.accounts.values() for coin, b in a.balances.items()}
    again = AuditReport(report.engine)
    _check_wallets(report.engine, logged, again)
    _check_coins(report.engine, {"USDT": report.coins[0].deposits},
                 {"USDT": report.coins[0].withdrawals}, again)
    assert not again.ok
    assert again.wallet_mismatches == [
        f"account 3 USDT: wallet {account.balances['USDT']}, transaction log "
        f"{account.balances['USDT'] - 1}"]
    assert again.coins[0].difference == 1


# -- issue #12 item 10: operator tools that cannot mislead -----------------------------------


@pytest.mark.parametrize("tool", ["replay", "audit"])
def test_a_missing_journal_is_refused_and_nothing_is_created(tool: str, location: str,
                                                             tmp_path: Path) -> None:
    """Item 10: on main `perpx audit` on a mistyped path created an empty journal and said
    "conserved"; now replay and audit exit 2 and create nothing (no file, no schema)."""
    missing = location if location.startswith("postgres") else str(tmp_path / "typo" / "j.db")
    result = CliRunner().invoke(app, [tool, "--journal", missing])
    assert result.exit_code == 2, result.output
    assert "no journal at" in result.output or "no table" in result.output
    assert not (tmp_path / "typo").exists()
    if location.startswith("postgres"):
        _, dsn, schema = parse_location(location)
        with psycopg.connect(dsn) as conn:
            found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                                 (schema,)).fetchone()
        assert found is None


def test_a_file_that_is_no_journal_is_refused(tmp_path: Path) -> None:
    """Item 10: a database without a journal table (keys.db, history.db) is not audited as
    an empty journal, and gets no table."""
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    result = CliRunner().invoke(app, ["audit", "--journal", str(other)])
    assert result.exit_code == 2 and "no journal table" in result.output
    tables = sqlite3.connect(other).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("t",)]


def test_readers_open_the_journal_read_only(location: str) -> None:
    """Item 10: replay and audit open journals read-only (SQLite mode=ro, PostgreSQL a
    read-only session); a write through the reader's connection fails."""
    writer = open_journal(location)
    writer.append([Deposit(1, 1, 1001, "USDT", 5)])
    writer.close()
    reader = open_journal(location, readonly=True)
    assert [c.seq for c in reader.read()] == [1]
    conn = reader._conn  # type: ignore[attr-defined]
    if location.startswith("postgres"):
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE perpx_should_not_exist (x int)")
    else:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("CREATE TABLE should_not_exist (x)")
    reader.close()


def test_a_journal_on_read_only_media_is_read_immutable(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 10: on main replay and audit could not read a journal on read-only media.

    Root writes through chmod, so the read-only folder is what `os.access` reports (as on
    a read-only mount): the URI adds immutable=1, and replay and audit read the journal.
    """
    url = _journal(tmp_path / "j.db")
    path = tmp_path / "j.db"
    assert readonly_uri(path).endswith("?mode=ro")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == tmp_path
                        else real_access(p, mode, **kw))
    assert readonly_uri(path).endswith("?mode=ro&immutable=1")
    before = sorted(p.name for p in tmp_path.iterdir())
    replayed = CliRunner().invoke(app, ["replay", "--journal", url, "--verify-snapshots"])
    assert replayed.exit_code == 0 and "last seq 1,200" in replayed.output, replayed.output
    assert "snapshots verified: 3" in replayed.output
    audited = CliRunner().invoke(app, ["audit", "--journal", url])
    assert audited.exit_code == 0 and "mismatches: 0" in audited.output, audited.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_unmerged_wal_on_read_only_media_is_refused(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 10: an immutable reader skips a -wal file's commands; refuse rather than read
    a journal short."""
    path = tmp_path / "j.db"
    journal = open_journal(str(path))
    journal._conn.execute("PRAGMA wal_autocheckpoint=0")  # type: ignore[attr-defined]
    journal.append([Deposit(1, 1, 1001, "USDT", 5)])
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False)
    result = CliRunner().invoke(app, ["audit", "--journal", str(path)])
    journal.close()
    assert result.exit_code == 2 and "not yet merged" in result.output
