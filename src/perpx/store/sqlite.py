"""The embedded journal: SQLite in WAL mode, one transaction per batch, fsync'd before return.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL`` syncs the write-ahead log at every
commit, so a batch is on disk when `append` returns and survives a power cut as well as a
crash of the process. (``NORMAL`` skips that sync in WAL mode: it survives a crash of the
process but may lose the last commits on power loss, which would break "acknowledged means
durable".) The sequencer's group commit puts everything that arrived during one flush into
one transaction, so one fsync carries many commands.

The sequencer calls `append` from a worker thread (``asyncio.to_thread``) while readers may
call from the event loop's, so the connection is opened with ``check_same_thread=False`` and
every use is guarded by a lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from perpx.core.commands import Command
from perpx.store.journal import JournalError, SqlJournal, check_continues

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


class SqliteJournal(SqlJournal):
    """The `Journal` protocol on one SQLite file: table ``journal(seq, ts_ms, body)``."""

    _conn: sqlite3.Connection

    def __init__(self, path: str | Path, synchronous: str = "FULL") -> None:
        if synchronous not in ("FULL", "EXTRA"):
            # Anything weaker may lose acknowledged commands on power loss (module docstring).
            raise ValueError("the journal needs synchronous=FULL or EXTRA to be durable")
        self.path = str(path)
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
