"""Request ids beside the journal's commands (issue #15): round trip, reopening, old journals.

On both backends (PostgreSQL when reachable, see `support.stores`). A journal written before
the ids existed has no ``rid`` column: a writer adds it, a reader finds no ids.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from perpx.core.commands import Command, PlaceOrder, Tick
from perpx.core.enums import OrderType, Side
from perpx.store import open_journal, parse_location
from perpx.store.codec import CommandCodec
from perpx.store.journal import Journal, JournalError, MemoryJournal, new_request_id


def _orders(first: int, count: int) -> list[Command]:
    return [PlaceOrder(s, s, 7, "BTCUSDT", Side.BUY, OrderType.LIMIT, s, 650_000)
            for s in range(first, first + count)]


def test_new_request_ids_are_16_bytes_and_distinct() -> None:
    ids = {new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert {len(rid) for rid in ids} == {16}
    first, second = new_request_id(), new_request_id()
    assert first[:8] == second[:8]  # the process's random prefix, then its counter
    assert int.from_bytes(second[8:], "big") == int.from_bytes(first[8:], "big") + 1


def test_request_ids_round_trip_and_survive_reopening(opener: Callable[[], Journal],
                                                       location: str) -> None:
    journal = opener()
    commands = _orders(1, 6)
    rids: list[bytes | None] = [new_request_id(), None, new_request_id(), None, None,
                                new_request_id()]
    journal.append(commands[:3], rids[:3])
    journal.append(commands[3:5])  # a batch of the writer's own commands: no ids at all
    journal.append(commands[5:], rids[5:])
    expected = [(n + 1, rid) for n, rid in enumerate(rids) if rid is not None]
    assert journal.request_ids() == expected
    assert journal.request_ids(3) == expected[1:]
    assert list(journal.read()) == commands  # the commands themselves are unchanged
    journal.close()
    reader = open_journal(location, readonly=True)
    assert reader.request_ids(2) == expected[1:]
    reader.close()
    again = opener()
    assert again.request_ids() == expected
    again.close()


def test_a_batch_with_the_wrong_number_of_ids_is_refused(opener: Callable[[], Journal]) -> None:
    journal = opener()
    with pytest.raises(JournalError, match="request ids"):
        journal.append(_orders(1, 2), [new_request_id()])
    assert journal.last_seq() == 0
    journal.close()


def test_memory_journal_keeps_request_ids() -> None:
    journal = MemoryJournal()
    rid = new_request_id()
    journal.append([Tick(1, 1), Tick(2, 2)], [None, rid])
    assert journal.request_ids() == [(2, rid)]
    assert journal.request_ids(3) == []


def _old_journal(location: str, commands: list[Command]) -> None:
    """Write `commands` as a journal from before the request ids (no ``rid`` column)."""
    kind, target, schema = parse_location(location)
    bodies = CommandCodec().encode_many(commands)
    rows = [(c.seq, c.ts_ms, b) for c, b in zip(commands, bodies, strict=True)]
    if kind == "sqlite":
        with sqlite3.connect(target) as db:
            db.execute("CREATE TABLE journal (seq INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, "
                       "body BLOB NOT NULL)")
            db.executemany("INSERT INTO journal VALUES (?, ?, ?)", rows)
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        table = sql.Identifier(schema, "journal")
        conn.execute(sql.SQL("CREATE TABLE {} (seq BIGINT PRIMARY KEY, ts_ms BIGINT NOT NULL, "
                             "body BYTEA NOT NULL)").format(table))
        with conn.cursor() as cur:
            cur.executemany(sql.SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(table), rows)


def test_an_old_journal_stays_readable_and_gains_the_column(location: str) -> None:
    old = _orders(1, 3)
    _old_journal(location, old)
    reader = open_journal(location, readonly=True)
    assert list(reader.read()) == old
    assert reader.request_ids() == []  # no column: no ids, no error, nothing created
    reader.close()
    writer = open_journal(location)  # adds the column
    rid = new_request_id()
    new = _orders(4, 2)
    writer.append(new, [rid, None])
    assert list(writer.read()) == old + new
    assert writer.request_ids() == [(4, rid)]
    writer.close()


def test_sqlite_stores_bodies_and_ids_as_the_blobs_bytes_would_be(tmp_path: Path) -> None:
    """`SqliteJournal.append` binds bytearrays (sqlite3's fast path): the same BLOB as bytes."""
    path = tmp_path / "journal.db"
    journal = open_journal(str(path))
    commands, rid = _orders(1, 2), new_request_id()
    journal.append(commands, [rid, None])
    journal.close()
    codec = CommandCodec()
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE expected (body BLOB, rid BLOB)")
        db.executemany("INSERT INTO expected VALUES (?, ?)",
                       [(codec.encode(c), r) for c, r in zip(commands, [rid, None],
                                                               strict=True)])
        stored = db.execute("SELECT typeof(body), typeof(rid), body, rid FROM journal "
                            "ORDER BY seq").fetchall()
        expected = db.execute("SELECT typeof(body), typeof(rid), body, rid FROM expected "
                              "ORDER BY rowid").fetchall()
    assert stored == expected
    assert stored[0][:2] == ("blob", "blob") and type(stored[0][3]) is bytes


@pytest.mark.parametrize("sizes", [[1, 15, 16, 17], [255, 256, 257], [600, 3, 4096, 31]])
def test_sqlite_batches_of_any_size_round_trip(tmp_path: Path, sizes: list[int]) -> None:
    """`SqliteJournal.append` inserts by statements of 256, 16 and 1 rows: every size lands."""
    journal = open_journal(str(tmp_path / "journal.db"))
    commands, rids, seq = [], [], 1
    for size in sizes:
        batch = _orders(seq, size)
        ids = [new_request_id() if n % 3 else None for n in range(size)]
        journal.append(batch, ids)
        commands += batch
        rids += ids
        seq += size
    assert journal.last_seq() == seq - 1
    assert list(journal.read()) == commands
    assert journal.request_ids() == [(n + 1, rid) for n, rid in enumerate(rids)
                                     if rid is not None]
    journal.close()
