"""`perpx replay` and `perpx audit` on a real journal, and the audit's checks catching errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from perpx.cli import app
from perpx.core.engine import Engine
from perpx.instruments import load_instruments
from perpx.sequencer import Sequencer
from perpx.store import open_journal, open_snapshots
from perpx.store.audit import AuditReport, _check_coins, _check_wallets, audit_journal
from perpx.store.loadflow import order_flow
from perpx.store.snapshotter import Snapshotter


def _journal(path: Path, count: int = 1200) -> str:
    url = f"sqlite:///{path}"

    async def go() -> None:
        journal, store = open_journal(url), open_snapshots(url)
        engine = Engine(load_instruments())
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
    expected = Engine(load_instruments())
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
    report = audit_journal(load_instruments(), open_journal(url))
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
