"""Two writers can never both accept: the writer lock, the leader epoch, the standby's takeover.

On both backends (SQLite: ``flock`` beside the file; PostgreSQL: a session advisory lock),
a second writer cannot open while the first lives, and a writer that lost its lock without
noticing (a zombie) cannot commit once a successor holds a newer leader epoch.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable

import pytest

from perpx.core.commands import Deposit
from perpx.core.engine import Engine
from perpx.instruments import load_instruments
from perpx.standby import Standby
from perpx.store import open_journal, parse_location
from perpx.store.journal import Journal, JournalBusy, JournalFenced


def _deposit(seq: int, amount: int = 5) -> Deposit:
    return Deposit(seq, seq, 1, "USDT", amount)


def _lose_lock(location: str, journal: Journal) -> None:
    """Make `journal` lose its writer lock while it keeps its connection (a zombie)."""
    if parse_location(location)[0] == "sqlite":
        fcntl.flock(journal._lock_fd, fcntl.LOCK_UN)  # type: ignore[attr-defined]
    else:
        journal._conn.execute("SELECT pg_advisory_unlock_all()")  # type: ignore[attr-defined]


def test_a_second_writer_cannot_open_while_the_first_lives(location: str) -> None:
    first = open_journal(location)
    first.append([_deposit(1)])
    with pytest.raises(JournalBusy, match="in use by another writer"):
        open_journal(location, lock_wait_s=0.2)
    reader = open_journal(location, readonly=True)
    assert reader.writer_alive()  # type: ignore[attr-defined]
    record = reader.leader()  # type: ignore[attr-defined]
    assert record.epoch == first.epoch  # type: ignore[attr-defined]
    first.advertise("http://127.0.0.1:1")  # type: ignore[attr-defined]
    assert reader.leader().holder == "http://127.0.0.1:1"  # type: ignore[attr-defined]
    first.close()
    # PostgreSQL drops a session's locks as its backend ends, a moment after the close.
    deadline = time.monotonic() + 5
    while reader.writer_alive() and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.01)
    assert not reader.writer_alive()  # type: ignore[attr-defined]
    second = open_journal(location, lock_wait_s=5)
    assert second.epoch == record.epoch + 1  # type: ignore[attr-defined]
    assert second.last_seq() == 1
    second.append([_deposit(2)])
    second.close()
    assert [c.seq for c in reader.read()] == [1, 2]
    reader.close()


def test_a_zombie_that_lost_its_lock_cannot_commit(location: str) -> None:
    zombie = open_journal(location)
    zombie.append([_deposit(1)])
    _lose_lock(location, zombie)
    successor = open_journal(location, lock_wait_s=5)  # takes the lock, bumps the epoch
    with pytest.raises(JournalFenced, match="taken over"):
        zombie.append([_deposit(2, amount=999)])
    successor.append([_deposit(2, amount=7)])
    zombie.close()
    reader = open_journal(location, readonly=True)
    commands = list(reader.read())
    assert [(c.seq, c.amount_atoms) for c in commands] == [(1, 5), (2, 7)]  # type: ignore[attr-defined]
    reader.close()
    successor.close()


def test_the_standby_follows_and_takes_over_only_when_the_lock_is_free(location: str) -> None:
    specs = load_instruments()
    leader = open_journal(location)
    leader.append([_deposit(seq) for seq in range(1, 4)])
    standby = Standby(specs, location, poll_s=0.01)
    assert standby.follow() == 3
    assert standby.try_lead() is None  # the leader lives: no takeover
    leader.append([_deposit(4)])
    done: list[bool] = []
    stop: Callable[[], bool] = lambda: bool(done)  # noqa: E731
    leader.close()  # the leader is gone (a kill -9 drops the lock the same way)
    takeover = standby.run(stop)
    assert takeover is not None
    assert takeover.engine.last_seq == takeover.journal.last_seq() == 4
    replayed = Engine(specs)
    for command in takeover.journal.read():
        replayed.apply(command)
    assert takeover.engine.state_hash() == replayed.state_hash()
    takeover.journal.append([_deposit(5)])  # the new leader accepts
    with pytest.raises(JournalBusy):
        open_journal(location, lock_wait_s=0.1)  # and is fenced like any writer
    takeover.journal.close()


def test_a_standby_stops_when_told(location: str) -> None:
    leader = open_journal(location)
    leader.append([_deposit(1)])
    calls: list[int] = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 3

    assert Standby(load_instruments(), location, poll_s=0.01).run(stop) is None
    leader.close()


def test_perpx_leader_names_the_writer_and_says_when_none_lives(location: str) -> None:
    import json

    from typer.testing import CliRunner

    from perpx.cli import app

    writer = open_journal(location)
    writer.advertise("http://127.0.0.1:8080")  # type: ignore[attr-defined]
    shown = CliRunner().invoke(app, ["leader", "--journal", location, "--json"])
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output)
    assert record["holder"] == "http://127.0.0.1:8080" and record["alive"] is True
    assert record["epoch"] == writer.epoch  # type: ignore[attr-defined]
    writer.close()
    deadline = time.monotonic() + 5
    while True:  # PostgreSQL drops the lock as the session's backend ends
        shown = CliRunner().invoke(app, ["leader", "--journal", location])
        if shown.exit_code == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert shown.exit_code == 1 and "alive=False" in shown.output
