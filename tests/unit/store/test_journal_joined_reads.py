"""A SQLite journal read a chunk at a time, its bodies joined (`read_chunks`), against row by row.

`SqliteJournal.read_chunks` fetches a chunk as one row (the bodies end to end) and decodes it
with one msgspec call (`CommandCodec.decode_joined`, held to the rows' seqs by
`decode_joined_run`); the reference is what every reader did before: the rows one by one
(`read_bodies`), each body decoded by `CommandCodec.decode`. Both must give the same
commands, in the same order, or the same error.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.store.test_journal_contract import every_command

from perpx.core.commands import Command, Deposit
from perpx.store.codec import FORMAT_COMMAND_ARRAY, JOIN_SEPARATOR, CodecError, CommandCodec
from perpx.store.journal import MemoryJournal, SqlJournal, decode_joined_run
from perpx.store.loadflow import order_flow
from perpx.store.sqlite import SqliteJournal


def _stamped(count: int, seed: int, first: int = 1) -> list[Command]:
    return [msgspec.structs.replace(c, seq=first + i, ts_ms=1_700_000_000_000 + i)
            for i, c in enumerate(order_flow(count, seed))]


def _row_by_row(journal: SqliteJournal, from_seq: int) -> list[Command]:
    codec = CommandCodec()
    return [codec.decode(body) for bodies in journal.read_bodies(from_seq) for body in bodies]


def _joined(journal: SqliteJournal, from_seq: int, chunk: int) -> list[Command]:
    chunks = list(journal.read_chunks(from_seq, chunk))
    assert all(0 < len(commands) <= chunk for commands in chunks)
    return [command for commands in chunks for command in commands]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(0, 400), batch=st.integers(1, 97),
       chunk=st.integers(1, 300), start=st.integers(-2, 420))
def test_joined_chunks_are_the_rows_decoded_one_by_one(tmp_path_factory: pytest.TempPathFactory,
                                                        seed: int, count: int, batch: int,
                                                        chunk: int, start: int) -> None:
    path = tmp_path_factory.mktemp("joined") / "journal.db"
    commands = _stamped(count, seed)
    journal = SqliteJournal(path)
    for at in range(0, count, batch):
        journal.append(commands[at:at + batch])
    expected = _row_by_row(journal, start)
    assert expected == commands[max(start, 1) - 1:]
    assert _joined(journal, start, chunk) == expected
    assert list(journal.read(start)) == expected
    journal.close()


def test_every_command_type_and_json_bodies_read_alike(tmp_path: Path) -> None:
    small = every_command(1)
    big = every_command(len(small) + 1, big=True)  # past 64 bits: JSON bodies
    journal = SqliteJournal(tmp_path / "journal.db")
    journal.append(small)
    journal.append(big)
    for chunk in (1, 3, len(small), 4096):
        assert _joined(journal, 1, chunk) == small + big == _row_by_row(journal, 1)
    journal.close()


def test_both_backends_read_chunks_as_their_rows_one_by_one(
        opener: Callable[[], SqlJournal]) -> None:
    journal = opener()
    small = every_command(1)
    big = every_command(len(small) + 1, big=True)  # JSON bodies among msgpack ones
    orders = _stamped(500, 8, 2 * len(small) + 1)
    journal.append(small)
    journal.append(big)
    journal.append(orders)
    codec = CommandCodec()
    for start in (1, len(small), 2 * len(small) + 1, 300, 10_000):
        expected = [codec.decode(body) for bodies in journal.read_bodies(start)
                    for body in bodies]
        assert expected == (small + big + orders)[start - 1:]
        for chunk in (1, 7, 64, 4096):
            chunks = list(journal.read_chunks(start, chunk))
            assert all(0 < len(commands) <= chunk for commands in chunks)
            assert [command for commands in chunks for command in commands] == expected
    journal.close()


def _rewrite(path: Path, sql: str, *args: object) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(sql, args)
    conn.close()


def test_a_corrupt_body_raises_as_it_does_row_by_row(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = SqliteJournal(path)
    journal.append(_stamped(50, 3))
    journal.close()
    # Row 20 holds its command and row 21's; row 21 is empty: the bytes end to end are
    # still 50 commands in seq order, but not the rows' own.
    conn = sqlite3.connect(path, isolation_level=None)
    body20, body21 = (conn.execute("SELECT body FROM journal WHERE seq = ?", (s,)).fetchone()[0]
                      for s in (20, 21))
    conn.close()
    _rewrite(path, "UPDATE journal SET body = ? WHERE seq = 21", b"")
    reader = SqliteJournal(path, readonly=True)
    with pytest.raises(CodecError):
        _row_by_row(reader, 1)
    reader.close()
    _rewrite(path, "UPDATE journal SET body = ? WHERE seq = 20", body20 + body21)
    reader = SqliteJournal(path, readonly=True)
    with pytest.raises(CodecError):
        _row_by_row(reader, 1)
    first = next(reader.read_chunks(1, 10))  # the chunk before the damage is read
    assert [c.seq for c in first] == list(range(1, 11))
    with pytest.raises(CodecError):
        _joined(reader, 1, 4096)
    with pytest.raises(CodecError):
        list(reader.read(1))
    reader.close()


def test_a_gap_in_seq_reads_as_row_by_row(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = SqliteJournal(path)
    journal.append(_stamped(40, 9))
    journal.close()
    _rewrite(path, "DELETE FROM journal WHERE seq = 17")
    reader = SqliteJournal(path, readonly=True)
    expected = _row_by_row(reader, 1)
    assert len(expected) == 39
    for chunk in (1, 5, 16, 17, 4096):
        assert _joined(reader, 1, chunk) == expected
    reader.close()


def test_a_follower_sees_a_growing_journal_chunk_by_chunk(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    commands = _stamped(300, 4)
    writer = SqliteJournal(path)
    reader = SqliteJournal(path, readonly=True)
    seen: list[Command] = []
    for at in range(0, 300, 37):
        writer.append(commands[at:at + 37])
        chunks = list(reader.read_chunks(len(seen) + 1))
        assert len(chunks) == 1  # one poll, one query (a short chunk is the end)
        seen.extend(chunks[0])
    assert seen == commands
    assert list(reader.read_chunks(301)) == []
    writer.close()
    reader.close()


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(0, 200), first=st.integers(1, 10**6),
       amount=st.one_of(st.none(), st.integers(0, 2**70)))
def test_decode_joined_is_decode_of_each_body(seed: int, count: int, first: int,
                                              amount: int | None) -> None:
    codec = CommandCodec()
    commands = _stamped(count, seed, first)
    if amount is not None and count:  # one command that may need the JSON format
        commands[count // 2] = Deposit(first + count // 2, 1, 1, "USDT", amount)
    bodies = codec.encode_many(commands)
    joined = JOIN_SEPARATOR.join(bodies)
    decoded = decode_joined_run(codec, joined, count, first)
    if all(body[0] == FORMAT_COMMAND_ARRAY for body in bodies):
        assert decoded == [codec.decode(body) for body in bodies] == commands
    else:
        assert decoded is None
    if count:
        assert decode_joined_run(codec, joined, count, first + 1) is None  # not these rows
        assert codec.decode_joined(joined, count + 1) is None
        assert codec.decode_joined(joined[:-1], count) is None
    if count >= 2:
        assert codec.decode_joined(b"".join(bodies), count) is None  # no separators
        # Two bodies in the first row, none in the second: not these bodies.
        moved = JOIN_SEPARATOR.join([bodies[0] + bodies[1], b"", *bodies[2:]])
        assert codec.decode_joined(moved, count) is None


def test_memory_journal_reads_one_chunk() -> None:
    journal = MemoryJournal()
    commands = _stamped(10, 1)
    journal.append(commands)
    assert list(journal.read_chunks(4)) == [commands[3:]]
    assert list(journal.read_chunks(11)) == []
