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
journal's true end and never races a ghost's last batch. On taking the lock a writer bumps
the leader epoch in ``<schema>.journal_leader``, and every group commit first reads that row
``FOR SHARE`` in its own transaction: a successor's bump waits for a batch in flight to
commit (so it reads the journal's true end after it), and a writer that lost its session lock
without losing its connection (a zombie: an administrator's ``pg_advisory_unlock_all``, a
pooler resetting the session) finds a newer epoch and is refused (`JournalFenced`) rather
than commit beside its successor. Readers (replay, audit) take no lock,
run in a read-only session (``default_transaction_read_only``) and create nothing: a schema
without a journal table is `JournalMissing`.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Sequence

import psycopg
from psycopg import sql

from perpx.core.commands import Command
from perpx.store.codec import JOIN_SEPARATOR
from perpx.store.journal import (
    JournalBusy,
    JournalError,
    JournalFenced,
    JournalMissing,
    LeaderRecord,
    RequestIds,
    SqlJournal,
    check_continues,
    check_request_ids,
)

DEFAULT_SCHEMA = "perpx"
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
        if time.monotonic() >= deadline:
            raise JournalBusy(f"journal {schema}.journal is in use by another writer")
        time.sleep(0.05)


def writer_alive(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> bool:
    """Say whether some session holds the writer lock of `schema`'s journal (`pg_locks`)."""
    key = writer_lock_key(schema)
    # A bigint advisory key shows as its high and low 32 bits, with objsubid 1.
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1",
        ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF)).fetchone()
    return bool(row and row[0])


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
    """The `Journal` protocol on PostgreSQL: table ``<schema>.journal(seq, ts_ms, body, rid)``.

    ``rid`` (the request id, NULL when none) was added with issue #15's exact retries; a
    writer adds the column to an older journal, and a reader of one finds no ids.
    """

    _conn: psycopg.Connection[tuple[object, ...]]

    def __init__(self, dsn: str, schema: str = DEFAULT_SCHEMA, *, writer: bool = True,
                 lock_wait_s: float = WRITER_LOCK_WAIT_S) -> None:
        self.dsn = dsn
        self.schema = schema
        self.writer = writer
        self.epoch = 0  # the leader epoch this writer holds (0: a reader)
        self._conn = connect(dsn, schema, readonly=not writer)
        self._table = sql.Identifier(schema, "journal")
        self._leader = sql.Identifier(schema, "journal_leader")
        if writer:
            try:
                take_writer_lock(self._conn, schema, lock_wait_s)
                self._conn.execute(sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (seq BIGINT PRIMARY KEY, "
                    "ts_ms BIGINT NOT NULL, body BYTEA NOT NULL, rid BYTEA)"
                ).format(self._table))
                self._conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS rid BYTEA")
                                   .format(self._table))
                self.epoch = self._lead(f"{socket.gethostname()} pid {os.getpid()}")
            except BaseException:
                self._conn.close()
                raise
        else:
            require_table(self._conn, schema, "journal")
        # Read after the epoch is bumped: no earlier writer can add a batch past this end.
        row = self._conn.execute(sql.SQL("SELECT max(seq) FROM {}").format(self._table)).fetchone()
        self._start(int(row[0] or 0) if row else 0)  # type: ignore[call-overload]
        self._copy = sql.SQL("COPY {} (seq, ts_ms, body, rid) FROM STDIN").format(self._table)
        self._read_rows = sql.SQL(
            "SELECT seq, body FROM {} WHERE seq >= %s ORDER BY seq LIMIT %s").format(self._table)
        self._read_joined = sql.SQL(
            "SELECT count(*), max(seq), string_agg(body, %s::bytea ORDER BY seq) FROM "
            "(SELECT seq, body FROM {} WHERE seq >= %s ORDER BY seq LIMIT %s) AS chunk"
        ).format(self._table)
        self._fence = sql.SQL("SELECT epoch FROM {} WHERE id = 1 FOR SHARE").format(self._leader)

    def _lead(self, holder: str) -> int:
        """Bump the leader epoch for this writer (one transaction); return the new epoch."""
        conn = self._conn
        conn.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (id INT PRIMARY KEY CHECK (id = 1), "
            "epoch BIGINT NOT NULL, holder TEXT NOT NULL, since_ms BIGINT NOT NULL)"
        ).format(self._leader))
        with conn.transaction():
            conn.execute(sql.SQL("INSERT INTO {} VALUES (1, 0, '', 0) ON CONFLICT DO NOTHING")
                         .format(self._leader))
            # Waits for a predecessor's batch in flight (it holds the row FOR SHARE).
            row = conn.execute(sql.SQL(
                "UPDATE {} SET epoch = epoch + 1, holder = %s, since_ms = %s WHERE id = 1 "
                "RETURNING epoch").format(self._leader),
                (holder, time.time_ns() // 1_000_000)).fetchone()
        assert row is not None
        epoch: int = row[0]  # type: ignore[assignment]
        return epoch

    def advertise(self, holder: str) -> None:
        """Say in the leader record where this writer serves (how gateways find the leader)."""
        with self._lock:
            if self._closed or not self.writer:
                return
            self._conn.execute(sql.SQL("UPDATE {} SET holder = %s WHERE id = 1 AND epoch = %s")
                               .format(self._leader), (holder, self.epoch))

    def leader(self) -> LeaderRecord | None:
        """Return the leader record (None before any writer of this code opened the journal)."""
        with self._lock:
            if self._closed:
                raise JournalError("journal is closed")
            name = self._leader.as_string(self._conn)
            found = self._conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
            if found is None or found[0] is None:
                return None
            row = self._conn.execute(sql.SQL("SELECT epoch, holder, since_ms FROM {} "
                                             "WHERE id = 1").format(self._leader)).fetchone()
        if row is None:
            return None
        return LeaderRecord(int(row[0]), str(row[1]), int(row[2]))  # type: ignore[call-overload]

    def writer_alive(self) -> bool:
        """Say whether a writer holds this journal's lock (what a standby waits on)."""
        if self.writer and not self._closed:
            return True
        with self._lock:
            return writer_alive(self._conn, self.schema)

    def append(self, commands: Sequence[Command], request_ids: RequestIds | None = None
               ) -> None:
        """COPY the batch in one transaction; return once the commit is flushed."""
        if not commands:
            return
        bodies = self._codec.encode_many(commands)
        ids = check_request_ids(commands, request_ids)
        with self._lock:
            if self._closed:
                raise JournalError("journal is closed")
            if not self.writer:
                raise JournalError("journal was opened read-only")
            check_continues(self._last_seq, commands)
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    # The fence, in the batch's own transaction (module docstring).
                    row = cur.execute(self._fence).fetchone()
                    if row is None or row[0] != self.epoch:
                        raise JournalFenced(
                            f"journal {self.schema}.journal was taken over (leader epoch "
                            f"{row[0] if row else '?'}, this writer's {self.epoch}): this "
                            "batch is not committed")
                    with cur.copy(self._copy) as copy:
                        for command, body, rid in zip(commands, bodies, ids, strict=True):
                            copy.write_row((command.seq, command.ts_ms, body, rid))
            except psycopg.Error as failure:
                raise JournalError(f"postgres journal write failed: {failure}") from failure
            self._last_seq = commands[-1].seq

    def _rows(self, from_seq: int, limit: int) -> list[tuple[int, bytes]]:
        with self._lock:
            if self._closed:
                raise JournalError("journal is closed")
            rows = self._conn.execute(self._read_rows, (from_seq, limit)).fetchall()
        return [(int(seq), bytes(body)) for seq, body in rows]  # type: ignore[call-overload]

    def _joined(self, from_seq: int, limit: int) -> tuple[int, int, bytes | None]:
        # string_agg's own ORDER BY joins the bodies in seq order (`SqlJournal.read_chunks`).
        with self._lock:
            if self._closed:
                raise JournalError("journal is closed")
            row = self._conn.execute(self._read_joined, (JOIN_SEPARATOR, from_seq, limit)
                                     ).fetchone()
        assert row is not None  # an aggregate: one row, also over no rows
        count, last, joined = row
        return (int(count), int(last or 0),  # type: ignore[call-overload]
                None if joined is None else bytes(joined))  # type: ignore[call-overload]

    def request_ids(self, from_seq: int = 1) -> list[tuple[int, bytes]]:
        """Return (seq, request id) of the commands from `from_seq` on that carry one."""
        with self._lock:
            if self._closed:
                raise JournalError("journal is closed")
            found = self._conn.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND "
                "table_name = 'journal' AND column_name = 'rid'", (self.schema,)).fetchone()
            if found is None:
                return []  # a journal from before the request ids, opened read-only
            rows = self._conn.execute(sql.SQL(
                "SELECT seq, rid FROM {} WHERE seq >= %s AND rid IS NOT NULL ORDER BY seq"
            ).format(self._table), (max(from_seq, 1),)).fetchall()
        return [(int(seq), bytes(rid)) for seq, rid in rows]  # type: ignore[call-overload]
