"""The embedded journal: SQLite in WAL mode, one transaction per batch, fsync'd before return.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL`` syncs the write-ahead log at every
commit, so a batch is on disk when `append` returns and survives a power cut as well as a
crash of the process. (``NORMAL`` skips that sync in WAL mode: it survives a crash of the
process but may lose the last commits on power loss, which would break "acknowledged means
durable".) The sequencer's group commit puts everything that arrived during one flush into
one transaction, so one fsync carries many commands.

Replay and audit open a journal read-only (`readonly=True`): a ``mode=ro`` URI, nothing
created, and ``immutable=1`` when the folder cannot be written (read-only media, where SQLite
could not make the ``-shm`` file WAL mode reads through). An immutable reader does not see
a ``-wal`` file's commands, so a journal whose ``-wal`` still holds some is refused there
rather than read short.

The sequencer calls `append` from a worker thread (``asyncio.to_thread``) while readers may
call from the event loop's, so the connection is opened with ``check_same_thread=False`` and
every use is guarded by a lock.

One writer at a time (issue #15, the hot standby): a writer holds an exclusive ``flock`` on
``<journal>.lock`` beside the file for its whole life (the kernel drops it when the process
dies, even by kill -9), and on taking it bumps the leader epoch in table ``journal_leader``.
Every group commit checks that epoch inside its ``BEGIN IMMEDIATE`` transaction, which SQLite
serialises with the bump: a writer that lost its lock unnoticed (a zombie) is refused
(`JournalFenced`) instead of committing beside its successor. A side file rather than the
database itself: closing any descriptor of the database would drop the POSIX locks SQLite
holds on it for the process's other connections. ``flock`` is per open file, so even two
writers in one process exclude each other; it is local to one machine (not NFS).
"""

from __future__ import annotations

import fcntl
import os
import socket
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

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

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    body BLOB NOT NULL,
    rid BLOB
)
"""

_LEADER = """
CREATE TABLE IF NOT EXISTS journal_leader (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL,
    holder TEXT NOT NULL,
    since_ms INTEGER NOT NULL
)
"""

# A chunk of the journal as one row: how many rows, the last seq, and their bodies joined by
# the codec's separator in seq order (`SqliteJournal.read_chunks`). group_concat keeps a
# BLOB's bytes as they are (NULs too, in a UTF-8 database) and joins in the order the
# ordered subquery gives (the reader checks it: the commands must carry the rows' seqs in
# order); the cast makes the join a BLOB again, so sqlite3 returns bytes.
_READ_JOINED = ("SELECT count(*), max(seq), CAST(group_concat(body, "
                f"x'{JOIN_SEPARATOR.hex()}') AS BLOB) FROM "
                "(SELECT seq, body FROM journal WHERE seq >= ? ORDER BY seq LIMIT ?)")
# A batch is inserted by statements of many rows each (`_insert`): one statement of 256 rows
# costs sqlite3 ~35% less a row than `executemany` row by row (one step, one reset, one GIL
# release for all of them, and no Python iteration per row). Sizes run from the largest down,
# so a batch of n rows takes at most n // 256 + 15 + 15 statements; each size is one cached
# prepared statement (sqlite3 keeps 128 by text). 256 rows bind 1,024 values, far below
# SQLite's limit of 32,766.
_ROW = "(?, ?, ?, ?)"
_INSERT_ROWS = {rows: "INSERT INTO journal (seq, ts_ms, body, rid) VALUES "
                + ", ".join([_ROW] * rows) for rows in (256, 16, 1)}


def _insert(conn: sqlite3.Connection, params: list[object]) -> None:
    """Insert the rows whose four values each lie flat in `params`, in order."""
    at, end = 0, len(params)
    for rows, statement in _INSERT_ROWS.items():
        width = 4 * rows
        while end - at >= width:
            conn.execute(statement, params[at:at + width])
            at += width
WRITER_LOCK_WAIT_S = 15.0
LOCK_POLL_S = 0.02


def lock_path(path: str | Path) -> Path:
    """Return the side file whose ``flock`` is the journal's writer lock."""
    return Path(str(path) + ".lock")


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def take_writer_lock(path: str | Path, wait_s: float = WRITER_LOCK_WAIT_S) -> int:
    """Hold the journal's writer lock (return its descriptor), waiting up to `wait_s`.

    Raise `JournalBusy` if another writer still holds it then.
    """
    fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    while not _try_flock(fd):
        if time.monotonic() >= deadline:
            os.close(fd)
            raise JournalBusy(f"journal {path} is in use by another writer")
        time.sleep(LOCK_POLL_S)
    return fd


def writer_alive(path: str | Path) -> bool:
    """Say whether some process holds the writer lock of the journal at `path`.

    The probe takes the lock for an instant when it is free; a writer opening at that moment
    simply waits (it waits up to `WRITER_LOCK_WAIT_S`).
    """
    try:
        fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return False  # no folder yet: no writer either
    try:
        return not _try_flock(fd)
    finally:
        os.close(fd)  # also releases the probe's own lock


def this_process() -> str:
    """Who a writer says it is in the leader record (host and pid) until it says more."""
    return f"{socket.gethostname()} pid {os.getpid()}"


def connect(path: str | Path, synchronous: str = "FULL") -> sqlite3.Connection:
    """Open `path` in WAL mode with the given sync level, usable from any one thread at a time."""
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                           timeout=30.0)
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal" and str(path) != ":memory:":
        conn.close()
        raise JournalError(f"{path}: could not switch SQLite to WAL mode (got {mode})")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn


def readonly_uri(path: str | Path) -> str:
    """Return the URI that opens the existing database `path` for reading only.

    Raise `JournalMissing` if there is no such file, and `JournalError` if the folder is
    read-only while a ``-wal`` file holds commands an immutable reader would skip.
    """
    file = Path(path).resolve()
    if not file.is_file():
        raise JournalMissing(f"no journal at {path}")
    query = "mode=ro"
    if not os.access(file.parent, os.W_OK):
        wal = file.with_name(file.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise JournalError(
                f"{wal} holds commands not yet merged into {file.name}, and SQLite reads "
                "them only where it can write beside the journal: copy both to writable "
                "storage first")
        query += "&immutable=1"
    return f"file:{quote(str(file))}?{query}"


def has_column(conn: sqlite3.Connection, table: str, column: str) -> bool:
    """Say whether `table` has `column` (a journal from before the request ids has no rid)."""
    return any(row[1] == column for row in conn.execute(f"PRAGMA table_info({table})"))


def connect_readonly(path: str | Path, table: str) -> sqlite3.Connection:
    """Open the existing database `path` read-only; `JournalMissing` if `table` is absent."""
    conn = sqlite3.connect(readonly_uri(path), uri=True, check_same_thread=False,
                           isolation_level=None, timeout=30.0)
    try:
        found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                             (table,)).fetchone()
    except sqlite3.DatabaseError as bad:  # not a database at all
        conn.close()
        raise JournalMissing(f"{path} is not a perpx journal: {bad}") from bad
    if found is None:
        conn.close()
        raise JournalMissing(f"{path} holds no {table} table")
    return conn


class SqliteJournal(SqlJournal):
    """The `Journal` protocol on one SQLite file: table ``journal(seq, ts_ms, body, rid)``.

    ``rid`` (the request id, NULL when none) was added with issue #15's exact retries; a
    writer adds the column to an older journal, and a reader of one finds no ids.
    """

    _conn: sqlite3.Connection

    def __init__(self, path: str | Path, synchronous: str = "FULL", *,
                 readonly: bool = False, lock_wait_s: float = WRITER_LOCK_WAIT_S) -> None:
        if synchronous not in ("FULL", "EXTRA"):
            # Anything weaker may lose acknowledged commands on power loss (module docstring).
            raise ValueError("the journal needs synchronous=FULL or EXTRA to be durable")
        self.path = str(path)
        self.readonly = readonly
        self.epoch = 0  # the leader epoch this writer holds (0: a reader)
        self._lock_fd = -1
        if readonly:
            self._conn = connect_readonly(path, "journal")
        else:
            if self.path != ":memory:":
                self._lock_fd = take_writer_lock(path, lock_wait_s)
            try:
                self._conn = connect(path, synchronous)
                self._conn.execute(_SCHEMA)
                if not has_column(self._conn, "journal", "rid"):
                    self._conn.execute("ALTER TABLE journal ADD COLUMN rid BLOB")
                self.epoch = self._lead(this_process())
            except BaseException:
                self._release()
                raise
        # Read after the epoch is bumped: no earlier writer can add a batch past this end.
        row = self._conn.execute("SELECT max(seq) FROM journal").fetchone()
        self._start(row[0] or 0)

    def _lead(self, holder: str) -> int:
        """Bump the leader epoch for this writer (one transaction); return the new epoch."""
        conn = self._conn
        conn.execute(_LEADER)
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT OR IGNORE INTO journal_leader VALUES (1, 0, '', 0)")
            conn.execute("UPDATE journal_leader SET epoch = epoch + 1, holder = ?, "
                         "since_ms = ? WHERE id = 1", (holder, time.time_ns() // 1_000_000))
            epoch = int(conn.execute(
                "SELECT epoch FROM journal_leader WHERE id = 1").fetchone()[0])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return epoch

    def advertise(self, holder: str) -> None:
        """Say in the leader record where this writer serves (how gateways find the leader)."""
        with self._lock:
            if self._closed or self.readonly:
                return
            self._conn.execute("UPDATE journal_leader SET holder = ? WHERE id = 1 AND "
                               "epoch = ?", (holder, self.epoch))

    def leader(self) -> LeaderRecord | None:
        """Return the leader record (None before any writer of this code opened the journal)."""
        with self._lock:
            if self._closed:
                raise JournalError("journal is closed")
            try:
                row = self._conn.execute(
                    "SELECT epoch, holder, since_ms FROM journal_leader WHERE id = 1").fetchone()
            except sqlite3.OperationalError:  # no such table: written before the epoch
                return None
        return LeaderRecord(int(row[0]), str(row[1]), int(row[2])) if row else None

    def writer_alive(self) -> bool:
        """Say whether a writer holds this journal's lock (what a standby waits on)."""
        if self._lock_fd >= 0:
            return True
        return writer_alive(self.path)

    def _release(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # drops the flock
            self._lock_fd = -1

    def close(self) -> None:
        """Close the connection, then let the next writer in."""
        super().close()
        self._release()

    def append(self, commands: Sequence[Command], request_ids: RequestIds | None = None
               ) -> None:
        """Write the batch in one transaction; return once it is synced to disk."""
        if not commands:
            return
        ids = check_request_ids(commands, request_ids)
        # Blobs as bytearray: sqlite3 binds int, float, str and bytearray at once, but looks a
        # bytes up in its adapters first, and the failed lookup (an AttributeError formatted
        # and dropped) costs ~3,300 instructions a blob, two a row: more than the insert
        # itself. The same BLOB is stored and read back as bytes.
        # The rows' values, flat, in the INSERTs' order: each column built by one
        # comprehension and laid into every fourth slot (no tuple and no extend a row).
        seqs = [command.seq for command in commands]
        params: list[object] = [None] * (4 * len(seqs))
        params[0::4] = seqs
        params[1::4] = [command.ts_ms for command in commands]
        params[2::4] = self._codec.encode_blobs(commands)
        params[3::4] = [None if rid is None else bytearray(rid) for rid in ids]
        with self._lock:
            if self._closed:
                raise JournalError("journal is closed")
            if self.readonly:
                raise JournalError("journal was opened read-only")
            first = self._last_seq + 1
            if seqs != list(range(first, first + len(seqs))):  # one comparison, in C
                check_continues(self._last_seq, commands)  # says where the gap is
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                # The fence: serialised with a successor's epoch bump by the write lock.
                row = self._conn.execute(
                    "SELECT epoch FROM journal_leader WHERE id = 1").fetchone()
                if row is None or row[0] != self.epoch:
                    self._conn.execute("ROLLBACK")
                    raise JournalFenced(f"journal {self.path} was taken over (leader epoch "
                                        f"{row[0] if row else '?'}, this writer's "
                                        f"{self.epoch}): this batch is not committed")
                _insert(self._conn, params)
                self._conn.execute("COMMIT")
            except sqlite3.Error as failure:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise JournalError(f"sqlite journal write failed: {failure}") from failure
            self._last_seq = commands[-1].seq

    def _rows(self, from_seq: int, limit: int) -> list[tuple[int, bytes]]:
        with self._lock:
            if self._closed:
                raise JournalError("journal is closed")
            rows: list[tuple[int, bytes]] = self._conn.execute(
                "SELECT seq, body FROM journal WHERE seq >= ? ORDER BY seq LIMIT ?",
                (from_seq, limit)).fetchall()
        return rows

    def _joined(self, from_seq: int, limit: int) -> tuple[int, int, bytes | None]:
        with self._lock:
            if self._closed:
                raise JournalError("journal is closed")
            row: tuple[int, int, bytes | None] = self._conn.execute(
                _READ_JOINED, (from_seq, limit)).fetchone()
        return row

    def request_ids(self, from_seq: int = 1) -> list[tuple[int, bytes]]:
        """Return (seq, request id) of the commands from `from_seq` on that carry one."""
        with self._lock:
            if self._closed:
                raise JournalError("journal is closed")
            if not has_column(self._conn, "journal", "rid"):
                return []  # a journal from before the request ids, opened read-only
            rows = self._conn.execute(
                "SELECT seq, rid FROM journal WHERE seq >= ? AND rid IS NOT NULL ORDER BY seq",
                (max(from_seq, 1),)).fetchall()
        return [(int(seq), bytes(rid)) for seq, rid in rows]
