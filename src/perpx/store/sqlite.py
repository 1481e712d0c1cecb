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
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

from perpx.core.commands import Command
from perpx.store.journal import JournalError, JournalMissing, SqlJournal, check_continues

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    body BLOB NOT NULL
)
"""

READ_CHUNK = 4096


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
    """The `Journal` protocol on one SQLite file: table ``journal(seq, ts_ms, body)``."""

    _conn: sqlite3.Connection

    def __init__(self, path: str | Path, synchronous: str = "FULL", *,
                 readonly: bool = False) -> None:
        if synchronous not in ("FULL", "EXTRA"):
            # Anything weaker may lose acknowledged commands on power loss (module docstring).
            raise ValueError("the journal needs synchronous=FULL or EXTRA to be durable")
        self.path = str(path)
        self.readonly = readonly
        if readonly:
            self._conn = connect_readonly(path, "journal")
        else:
            self._conn = connect(path, synchronous)
            self._conn.execute(_SCHEMA)
        row = self._conn.execute("SELECT max(seq) FROM journal").fetchone()
        self._start(row[0] or 0)

    def append(self, commands: Sequence[Command]) -> None:
        """Write the batch in one transaction; return once it is synced to disk."""
        if not commands:
            return
        bodies = self._codec.encode_many(commands)
        rows = [(c.seq, c.ts_ms, b) for c, b in zip(commands, bodies, strict=True)]
        with self._lock:
            if self._closed:
                raise JournalError("journal is closed")
            if self.readonly:
                raise JournalError("journal was opened read-only")
            check_continues(self._last_seq, commands)
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(
                    "INSERT INTO journal (seq, ts_ms, body) VALUES (?, ?, ?)", rows)
                self._conn.execute("COMMIT")
            except sqlite3.Error as failure:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise JournalError(f"sqlite journal write failed: {failure}") from failure
            self._last_seq = commands[-1].seq

    def read_bodies(self, from_seq: int = 1, chunk: int = READ_CHUNK) -> Iterator[list[bytes]]:
        """Yield the encoded bodies from `from_seq` on, a list of up to `chunk` at a time."""
        next_seq = max(from_seq, 1)
        while True:
            with self._lock:
                if self._closed:
                    raise JournalError("journal is closed")
                rows = self._conn.execute(
                    "SELECT seq, body FROM journal WHERE seq >= ? ORDER BY seq LIMIT ?",
                    (next_seq, chunk)).fetchall()
            if not rows:
                return
            next_seq = rows[-1][0] + 1
            yield [row[1] for row in rows]
