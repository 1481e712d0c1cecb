"""A toy projection for the bus tests: event counts per type, its position in the same row set."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from perpx.bus import EventBatch


class Crash(Exception):
    """The projector process died here (mid-batch, before its transaction committed)."""


class CountingProjection:
    """Counts of events by type and the last applied seq, in one SQLite transaction."""

    def __init__(self, path: Path, crash_after_batches: int | None = None) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("CREATE TABLE IF NOT EXISTS counts (kind TEXT PRIMARY KEY, n INT)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS position (seq INT)")
        self.crash_after = crash_after_batches
        self.applied = 0

    def position(self) -> int:
        row = self.conn.execute("SELECT max(seq) FROM position").fetchone()
        return int(row[0] or 0)

    def apply(self, batch: EventBatch) -> None:
        self.conn.execute("BEGIN")
        for event in batch.events():
            self.conn.execute("INSERT INTO counts VALUES (?, 1) ON CONFLICT(kind) "
                              "DO UPDATE SET n = n + 1", (type(event).__name__,))
        if self.crash_after is not None and self.applied >= self.crash_after:
            self.conn.close()  # rows written, position not: the transaction is lost
            raise Crash
        self.conn.execute("DELETE FROM position")
        self.conn.execute("INSERT INTO position VALUES (?)", (batch.last_seq,))
        self.conn.execute("COMMIT")
        self.applied += 1

    def rows(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT kind, n FROM counts").fetchall())
