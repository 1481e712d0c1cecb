"""The journal's command formats: format 3 (arrays) written, formats 1 and 2 (maps) still read.

`tests/data/journals/format1.db.gz` is a SQLite journal written by perpx at 852a16f, before
format 3 existed (format-1 bodies, and format-2 JSON bodies past 64 bits; every command
type); `format1.json` holds the state hash that perpx computed replaying it then. Read by
today's code, on either backend, alone or with a newer writer's format-3 rows after it,
it must replay to that hash, and every chunked read must give what decoding its rows one
by one gives. `format3_fields.json` pins format 3's positions.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.store.test_journal_contract import every_command

from perpx.core.commands import Command
from perpx.core.engine import Engine
from perpx.instruments import load_instruments
from perpx.store import open_journal, parse_location
from perpx.store.audit import audit_journal
from perpx.store.codec import (
    FORMAT_COMMAND_ARRAY,
    FORMAT_JSON,
    FORMAT_MSGPACK,
    JOIN_SEPARATOR,
    CodecError,
    CommandCodec,
    command_types,
)
from perpx.store.journal import SqlJournal
from perpx.store.loadflow import order_flow
from perpx.store.replay import replay_journal
from perpx.store.sqlite import SqliteJournal

DATA = Path(__file__).resolve().parents[2] / "data" / "journals"
RECORDED = json.loads((DATA / "format1.json").read_text(encoding="utf-8"))


def _old_journal(folder: Path) -> Path:
    """Unpack the format-1 fixture into `folder`; return its path."""
    path = folder / "old.db"
    with gzip.open(DATA / "format1.db.gz") as packed, path.open("wb") as out:
        shutil.copyfileobj(packed, out)
    return path


def _old_rows(folder: Path) -> list[tuple[int, int, bytes, bytes | None]]:
    """Return the fixture's rows as stored: (seq, ts_ms, body, rid)."""
    import sqlite3

    with sqlite3.connect(_old_journal(folder)) as db:
        return db.execute("SELECT seq, ts_ms, body, rid FROM journal ORDER BY seq").fetchall()


def _row_by_row(journal: SqlJournal, from_seq: int = 1) -> list[Command]:
    codec = CommandCodec()
    return [codec.decode(body) for bodies in journal.read_bodies(from_seq) for body in bodies]


def _chunked(journal: SqlJournal, chunk: int, from_seq: int = 1) -> list[Command]:
    return [c for commands in journal.read_chunks(from_seq, chunk) for c in commands]


def _newer(first_seq: int, count: int) -> list[Command]:
    """`count` commands of the order flow, stamped to follow the fixture's last command."""
    return [msgspec.structs.replace(c, seq=first_seq + i, ts_ms=1_800_000_000_000 + i)
            for i, c in enumerate(order_flow(count, 9, start=1))]


def _replayed_hash(commands: list[Command]) -> str:
    engine = Engine(load_instruments())
    for command in commands:
        engine.apply(command)
    return engine.state_hash()


def test_the_fixture_holds_the_old_formats_of_every_command_type(tmp_path: Path) -> None:
    rows = _old_rows(tmp_path)
    assert len(rows) == RECORDED["commands"]
    assert {row[2][0] for row in rows} == {FORMAT_MSGPACK, FORMAT_JSON}
    codec = CommandCodec()
    assert {type(codec.decode(row[2])) for row in rows} == set(command_types())


def test_the_by_name_types_are_the_old_encoding_byte_for_byte(tmp_path: Path) -> None:
    # What the codec reads formats 1 and 2 with, and writes format 2 with, encodes every
    # command of the fixture to the very bytes the old encoder wrote.
    codec = CommandCodec()
    for _seq, _ts, body, _rid in _old_rows(tmp_path):
        command = codec.decode(body)
        by_name = codec._to_name[type(command)](*msgspec.structs.astuple(command))
        if body[0] == FORMAT_MSGPACK:
            assert bytes([FORMAT_MSGPACK]) + msgspec.msgpack.encode(by_name) == body
        else:
            assert codec.encode(command) == body  # past 64 bits: still format 2


def test_an_old_sqlite_journal_replays_to_its_recorded_state(tmp_path: Path) -> None:
    journal = SqliteJournal(_old_journal(tmp_path), readonly=True)
    expected = _row_by_row(journal)
    for chunk in (1, 7, 100, 4096):
        assert _chunked(journal, chunk) == expected
    assert list(journal.read(200)) == expected[199:]
    report = replay_journal(load_instruments(), journal)
    assert report.commands == RECORDED["commands"]
    assert report.engine.state_hash() == RECORDED["state_hash"]
    assert audit_journal(load_instruments(), journal).commands == RECORDED["commands"]
    journal.close()


def test_an_old_journal_appended_by_a_new_writer_reads_both_formats(
        tmp_path: Path, location: str) -> None:
    """Old rows stay as written, new rows are format 3, on SQLite and on PostgreSQL."""
    rows = _old_rows(tmp_path)
    kind, target, schema = parse_location(location)
    if kind == "sqlite":
        shutil.copyfile(_old_journal(tmp_path), target)
    else:  # the old rows as an older perpx's COPY left them
        open_journal(location).close()  # creates the tables
        import psycopg
        from psycopg import sql

        statement = sql.SQL("COPY {} (seq, ts_ms, body, rid) FROM STDIN").format(
            sql.Identifier(schema, "journal"))
        with (psycopg.connect(target, autocommit=True) as conn, conn.cursor() as cur,
              cur.copy(statement) as copy):
            for row in rows:
                copy.write_row(row)
    reader = open_journal(location, readonly=True)
    assert isinstance(reader, SqlJournal)
    old = _row_by_row(reader)
    report = replay_journal(load_instruments(), reader)
    assert report.engine.state_hash() == RECORDED["state_hash"]
    reader.close()

    writer = open_journal(location)
    newer = _newer(writer.last_seq() + 1, 300)
    writer.append(newer[:120])
    writer.append(newer[120:])
    assert isinstance(writer, SqlJournal)
    forms = [body[0] for bodies in writer.read_bodies(1) for body in bodies]
    assert set(forms[:len(rows)]) == {FORMAT_MSGPACK, FORMAT_JSON}
    assert set(forms[len(rows):]) == {FORMAT_COMMAND_ARRAY}
    everything = _row_by_row(writer)
    assert everything == old + newer
    boundary = len(rows) + 1
    for chunk in (1, 5, 64, 1000):
        for start in (1, boundary - 3, boundary, boundary + 7):
            assert _chunked(writer, chunk, start) == everything[start - 1:]
    replayed = replay_journal(load_instruments(), writer)
    assert replayed.engine.state_hash() == _replayed_hash(old + newer)
    writer.close()


def _expected_form(command: Command) -> int:
    """Format 3, or format 2 (JSON by name) for a command past msgpack's 64-bit integers."""
    try:
        msgspec.msgpack.encode(command)
    except OverflowError:
        return FORMAT_JSON
    return FORMAT_COMMAND_ARRAY


def test_a_new_journal_writes_format_3(opener: Callable[[], SqlJournal]) -> None:
    journal = opener()
    small = every_command(1)
    big = every_command(len(small) + 1, big=True)
    journal.append(small + big)
    forms = [body[0] for bodies in journal.read_bodies(1) for body in bodies]
    assert forms == [FORMAT_COMMAND_ARRAY] * len(small) + [_expected_form(c) for c in big]
    assert FORMAT_JSON in forms
    assert list(journal.read()) == small + big
    journal.close()


def test_format_3_positions_only_grow_at_a_types_end() -> None:
    """A format-3 body is positional: a field may be added only last, with a default."""
    pinned: dict[str, list[str]] = json.loads(
        (DATA / "format3_fields.json").read_text(encoding="utf-8"))
    kinds = {kind.__name__: kind for kind in command_types()}
    assert set(pinned) <= set(kinds), "a command type journaled in format 3 is gone"
    for name, fields in pinned.items():
        kind = kinds[name]
        now = msgspec.structs.fields(kind)
        assert [f.name for f in now[:len(fields)]] == fields, (
            f"{name}'s fields moved: format-3 bodies already written would misread")
        assert all(not f.required for f in now[len(fields):]), (
            f"{name} gained a required field: older format-3 bodies lack it")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(1, 60), split=st.integers(0, 60),
       old_first=st.booleans())
def test_joined_reads_of_either_format_are_decode_of_each_body(
        seed: int, count: int, split: int, old_first: bool) -> None:
    """`decode_joined` of format-1 bodies, of format-3 bodies, or of both (then None)."""
    codec = CommandCodec()
    commands = [msgspec.structs.replace(c, seq=1 + i, ts_ms=i)
                for i, c in enumerate(order_flow(count, seed))] + every_command(count + 1)
    arrays = codec.encode_many(commands)
    maps = [bytes([FORMAT_MSGPACK]) + msgspec.msgpack.encode(
        codec._to_name[type(c)](*msgspec.structs.astuple(c))) for c in commands]
    for bodies in (arrays, maps):
        assert [codec.decode(body) for body in bodies] == commands
        assert codec.decode_joined(JOIN_SEPARATOR.join(bodies), len(bodies)) == commands
    cut = min(split, len(commands) - 1) + 1
    mixed = maps[:cut] + arrays[cut:] if old_first else arrays[:cut] + maps[cut:]
    assert [codec.decode(body) for body in mixed] == commands
    if cut < len(commands):  # both formats in one chunk: read row by row instead
        assert codec.decode_joined(JOIN_SEPARATOR.join(mixed), len(mixed)) is None


@pytest.mark.parametrize("body", [b"\x03", b"\x03\xc0", b"\x03\x91\xa4Tick", b"\x04\x90",
                                  b"\x03\x93\xa4Nope\x01\x02"])
def test_a_bad_format_3_body_is_a_codec_error(body: bytes) -> None:
    with pytest.raises(CodecError):
        CommandCodec().decode(body)
