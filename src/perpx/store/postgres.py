"""The production journal: PostgreSQL through psycopg 3, one transaction per batch.

Every connection runs with ``synchronous_commit = on``, so a commit returns only once the
server has flushed its WAL: a batch is durable when `append` returns. A batch goes in with
``COPY`` inside one transaction (group commit: one WAL flush for the whole batch). Tables live
in a named schema (``perpx`` by default) so tests can use a fresh schema per run.

Like the SQLite journal, it is called from the sequencer's worker thread and from readers, so
the connection is guarded by a lock.

A writer fences itself with a session advisory lock on the schema's journal. A process killed
while its COMMIT was in flight leaves a server backend that may still commit that batch; the
lock is released only when that backend ends, so a restarted writer that takes it reads the
journal's true end and never races a ghost's last batch. Readers (replay, audit) take no lock,
run in a read-only session (``default_transaction_read_only``) and create nothing: a schema
without a journal table is `JournalMissing`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence

import psycopg
from psycopg import sql

from perpx.core.commands import Command
from perpx.store.journal import JournalError, JournalMissing, SqlJournal, check_continues

DEFAULT_SCHEMA = "perpx"
READ_CHUNK = 4096
WRITER_LOCK_WAIT_S = 15.0


def writer_lock_key(schema: str) -> int:
    """Return the advisory-lock key of a schema's journal writer (a stable signed int64)."""
    digest = hashlib.sha256(f"perpx-journal:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def take_writer_lock(conn: psycopg.Connection[tuple[object, ...]], schema: str,
                     wait_s: float = WRITER_LOCK_WAIT_S) -> None:
    """Hold the journal's writer lock for the session, waiting out a dying predecessor."""
    key = writer_lock_key(schema)
    deadline = time.monotonic() + wait_s
    while True:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if row and row[0]:
            return
        if time.monotonic() > deadline:
            raise JournalError(f"journal {schema}.journal is in use by another writer")
        time.sleep(0.05)


def connect(dsn: str, schema: str, *,
            readonly: bool = False) -> psycopg.Connection[tuple[object, ...]]:
    """Open a connection with synchronous commits, and create `schema` if it is missing.

    `readonly`: a read-only session that creates nothing.
    """
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.Error as failure:
        raise JournalError(f"cannot connect to PostgreSQL: {failure}") from failure
    if readonly:
        conn.execute("SET default_transaction_read_only = on")
        return conn
    conn.execute("SET synchronous_commit = on")
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    return conn


def require_table(conn: psycopg.Connection[tuple[object, ...]], schema: str,
                  table: str) -> None:
    """Raise `JournalMissing` (closing `conn`) unless `schema.table` exists."""
    name = sql.Identifier(schema, table).as_string(conn)
    row = conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
    if row is None or row[0] is None:
        conn.close()
        raise JournalMissing(f"no table {schema}.{table} in that database")


class PostgresJournal(SqlJournal):
    """The `Journal` protocol on PostgreSQL: table ``<schema>.journal(seq, ts_ms, body)``."""

    _conn: psycopg.Connection[tuple[object, ...]]

    def __init__(self, dsn: str, schema: str = DEFAULT_SCHEMA, *, writer: bool = True) -> None:
        self.dsn = dsn
        self.schema = schema
        self.writer = writer
        self._conn = connect(dsn, schema, readonly=not writer)
        self._table = sql.Identifier(schema, "journal")
        if writer:
            try:
                take_writer_lock(self._conn, schema)
            except BaseException:
                self._conn.close()
                raise
            self._conn.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (seq BIGINT PRIMARY KEY, ts_ms BIGINT NOT NULL, "
                "body BYTEA NOT NULL)").format(self._table))
        else:
            require_table(self._conn, schema, "journal")
        row = self._conn.execute(sql.SQL("SELECT max(seq) FROM {}").format(self._table)).fetchone()
        self._start(int(row[0] or 0) if row else 0)  # type: ignore[call-overload]
        self._copy = sql.SQL("COPY {} (seq, ts_ms, body) FROM STDIN").format(self._table)

    def append(self, commands: Sequence[Command]) -> None:
        """COPY the batch in one transaction; return once the commit is flushed."""
        if not commands:
            return
        bodies = self._codec.encode_many(commands)
        with self._lock:
            if self._closed:
                raise JournalError("journal is closed")
            if not self.writer:
                raise JournalError("journal was opened read-only")
            check_continues(self._last_seq, commands)
            try:
                with self._conn.transaction(), self._conn.cursor() as cur, \
                        cur.copy(self._copy) as copy:
                    for command, body in zip(commands, bodies, strict=True):
                        copy.write_row((command.seq, command.ts_ms, body))
            except psycopg.Error as failure:
                raise JournalError(f"postgres journal write failed: {failure}") from failure
            self._last_seq = commands[-1].seq

    def read_bodies(self, from_seq: int = 1, chunk: int = READ_CHUNK) -> Iterator[list[bytes]]:
        """Yield the encoded bodies from `from_seq` on, a list of up to `chunk` at a time."""
        query = sql.SQL(
            "SELECT seq, body FROM {} WHERE seq >= %s ORDER BY seq LIMIT %s").format(self._table)
        next_seq = max(from_seq, 1)
        while True:
            with self._lock:
                if self._closed:
                    raise JournalError("journal is closed")
                rows = self._conn.execute(query, (next_seq, chunk)).fetchall()
            if not rows:
                return
            next_seq = int(rows[-1][0]) + 1  # type: ignore[call-overload]
            yield [bytes(row[1]) for row in rows]  # type: ignore[call-overload]
