"""Snapshot stores: the engine's encoded state at a seq, in the journal's own database.

Tables (SQLite and PostgreSQL alike):

- ``snapshots(seq, ts_ms, state_hash, nbytes, chunks)``: one row per complete snapshot;
- ``snapshot_chunks(seq, idx, body)``: the encoded state, in chunks of `chunk_bytes`.

A snapshot of a big book runs to tens of megabytes. Written as one row it would hold SQLite's
single write lock (and the journal's appends behind it) for the whole write, so the body goes
in chunk by chunk, each in its own short transaction, and the ``snapshots`` row is written
last: a crash part-way leaves orphan chunks (removed by the next `save`), never a snapshot
that looks complete but is not.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from psycopg import sql

from perpx.store import postgres as pg
from perpx.store import sqlite as sq

DEFAULT_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """The header of a stored snapshot."""

    seq: int
    ts_ms: int
    state_hash: str
    nbytes: int
    chunks: int


class SnapshotStore(Protocol):
    """Where snapshots are saved and found again."""

    def save(self, body: bytes, seq: int, state_hash: str, ts_ms: int = 0) -> None:
        """Store `body` as the snapshot at `seq`; durable and complete on return."""
        ...

    def headers(self) -> list[SnapshotInfo]:
        """Return every complete snapshot's header, newest first."""
        ...

    def load(self, seq: int) -> bytes:
        """Return the body of the snapshot at `seq` (the chunks joined)."""
        ...

    def latest(self) -> tuple[SnapshotInfo, bytes] | None:
        """Return the newest complete snapshot and its body, or None."""
        ...

    def prune(self, keep: int) -> None:
        """Delete all but the `keep` newest snapshots."""
        ...

    def incomplete(self) -> list[int]:
        """Return the seqs of snapshots whose writing was cut short (chunks, no header)."""
        ...

    def corrupt_for_tests(self, seq: int) -> None:
        """Damage a stored snapshot's bytes (tests of the fallback to older ones)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


def _chunks(body: bytes, size: int) -> list[bytes]:
    return [body[i:i + size] for i in range(0, len(body), size)] or [b""]


class SqliteSnapshotStore:
    """Snapshots in the journal's SQLite file (its own connection, same WAL durability)."""

    def __init__(self, path: str | Path, chunk_bytes: int = DEFAULT_CHUNK_BYTES, *,
                 readonly: bool = False) -> None:
        self._lock = threading.Lock()
        self.chunk_bytes = chunk_bytes
        if readonly:  # perpx replay: read what is there, create nothing
            self._conn = sq.connect_readonly(path, "snapshot_chunks")
            return
        self._conn = sq.connect(path)
        self._conn.execute("CREATE TABLE IF NOT EXISTS snapshots (seq INTEGER PRIMARY KEY, "
                           "ts_ms INTEGER NOT NULL, state_hash TEXT NOT NULL, "
                           "nbytes INTEGER NOT NULL, chunks INTEGER NOT NULL)")
        self._conn.execute("CREATE TABLE IF NOT EXISTS snapshot_chunks (seq INTEGER NOT NULL, "
                           "idx INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (seq, idx))")

    def save(self, body: bytes, seq: int, state_hash: str, ts_ms: int = 0) -> None:
        """Write the chunks, one short transaction each, then the header row."""
        with self._lock:
            self._conn.execute("DELETE FROM snapshot_chunks WHERE seq NOT IN "
                               "(SELECT seq FROM snapshots)")
            if self._conn.execute("SELECT 1 FROM snapshots WHERE seq = ?", (seq,)).fetchone():
                return
            parts = _chunks(body, self.chunk_bytes)
            for idx, part in enumerate(parts):
                self._conn.execute("INSERT INTO snapshot_chunks (seq, idx, body) VALUES (?, ?, ?)",
                                   (seq, idx, part))
            self._conn.execute("INSERT INTO snapshots (seq, ts_ms, state_hash, nbytes, chunks) "
                               "VALUES (?, ?, ?, ?, ?)",
                               (seq, ts_ms, state_hash, len(body), len(parts)))

    def headers(self) -> list[SnapshotInfo]:
        """Return every complete snapshot's header, newest first."""
        with self._lock:
            rows = self._conn.execute("SELECT seq, ts_ms, state_hash, nbytes, chunks "
                                      "FROM snapshots ORDER BY seq DESC").fetchall()
        return [SnapshotInfo(*row) for row in rows]

    def load(self, seq: int) -> bytes:
        """Return the body of the snapshot at `seq`."""
        with self._lock:
            rows = self._conn.execute("SELECT body FROM snapshot_chunks WHERE seq = ? "
                                      "ORDER BY idx", (seq,)).fetchall()
        return b"".join(row[0] for row in rows)

    def latest(self) -> tuple[SnapshotInfo, bytes] | None:
        """Return the newest complete snapshot and its body, or None."""
        headers = self.headers()
        return (headers[0], self.load(headers[0].seq)) if headers else None

    def prune(self, keep: int) -> None:
        """Delete all but the `keep` newest snapshots (header first, then chunks)."""
        with self._lock:
            old = [row[0] for row in self._conn.execute(
                "SELECT seq FROM snapshots ORDER BY seq DESC LIMIT -1 OFFSET ?", (keep,))]
            for seq in old:
                self._conn.execute("DELETE FROM snapshots WHERE seq = ?", (seq,))
                self._conn.execute("DELETE FROM snapshot_chunks WHERE seq = ?", (seq,))

    def incomplete(self) -> list[int]:
        """Return the seqs of chunks with no header: snapshots whose writing was cut short."""
        with self._lock:
            return [row[0] for row in self._conn.execute(
                "SELECT DISTINCT seq FROM snapshot_chunks WHERE seq NOT IN "
                "(SELECT seq FROM snapshots) ORDER BY seq")]

    def corrupt_for_tests(self, seq: int) -> None:
        """Flip bytes of a stored snapshot (used by tests of the fallback to older ones)."""
        with self._lock:
            self._conn.execute("UPDATE snapshot_chunks SET body = zeroblob(length(body)) "
                               "WHERE seq = ?", (seq,))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


class PostgresSnapshotStore:
    """Snapshots in the journal's PostgreSQL schema."""

    def __init__(self, dsn: str, schema: str = pg.DEFAULT_SCHEMA,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES, *, readonly: bool = False) -> None:
        self._conn = pg.connect(dsn, schema, readonly=readonly)
        self._lock = threading.Lock()
        self.chunk_bytes = chunk_bytes
        self._head = sql.Identifier(schema, "snapshots")
        self._body = sql.Identifier(schema, "snapshot_chunks")
        if readonly:  # perpx replay: read what is there, create nothing
            pg.require_table(self._conn, schema, "snapshot_chunks")
            return
        self._conn.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (seq BIGINT PRIMARY KEY, ts_ms BIGINT NOT NULL, "
            "state_hash TEXT NOT NULL, nbytes BIGINT NOT NULL, chunks INTEGER NOT NULL)"
        ).format(self._head))
        self._conn.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (seq BIGINT NOT NULL, idx INTEGER NOT NULL, "
            "body BYTEA NOT NULL, PRIMARY KEY (seq, idx))").format(self._body))

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(head=self._head, body=self._body)

    def save(self, body: bytes, seq: int, state_hash: str, ts_ms: int = 0) -> None:
        """Write the chunks, one short transaction each, then the header row."""
        with self._lock:
            self._conn.execute(self._q(
                "DELETE FROM {body} WHERE seq NOT IN (SELECT seq FROM {head})"))
            if self._conn.execute(self._q("SELECT 1 FROM {head} WHERE seq = %s"),
                                  (seq,)).fetchone():
                return
            parts = _chunks(body, self.chunk_bytes)
            for idx, part in enumerate(parts):
                self._conn.execute(self._q(
                    "INSERT INTO {body} (seq, idx, body) VALUES (%s, %s, %s)"), (seq, idx, part))
            self._conn.execute(self._q(
                "INSERT INTO {head} (seq, ts_ms, state_hash, nbytes, chunks) "
                "VALUES (%s, %s, %s, %s, %s)"), (seq, ts_ms, state_hash, len(body), len(parts)))

    def headers(self) -> list[SnapshotInfo]:
        """Return every complete snapshot's header, newest first."""
        with self._lock:
            rows = self._conn.execute(self._q(
                "SELECT seq, ts_ms, state_hash, nbytes, chunks FROM {head} ORDER BY seq DESC")
            ).fetchall()
        return [SnapshotInfo(*row) for row in rows]  # type: ignore[arg-type]

    def load(self, seq: int) -> bytes:
        """Return the body of the snapshot at `seq`."""
        with self._lock:
            rows = self._conn.execute(self._q(
                "SELECT body FROM {body} WHERE seq = %s ORDER BY idx"), (seq,)).fetchall()
        return b"".join(bytes(row[0]) for row in rows)  # type: ignore[call-overload]

    def latest(self) -> tuple[SnapshotInfo, bytes] | None:
        """Return the newest complete snapshot and its body, or None."""
        headers = self.headers()
        return (headers[0], self.load(headers[0].seq)) if headers else None

    def prune(self, keep: int) -> None:
        """Delete all but the `keep` newest snapshots (header first, then chunks)."""
        with self._lock:
            old = [row[0] for row in self._conn.execute(self._q(
                "SELECT seq FROM {head} ORDER BY seq DESC OFFSET %s"), (keep,)).fetchall()]
            for seq in old:
                self._conn.execute(self._q("DELETE FROM {head} WHERE seq = %s"), (seq,))
                self._conn.execute(self._q("DELETE FROM {body} WHERE seq = %s"), (seq,))

    def incomplete(self) -> list[int]:
        """Return the seqs of chunks with no header: snapshots whose writing was cut short."""
        with self._lock:
            return [int(row[0]) for row in self._conn.execute(  # type: ignore[call-overload]
                self._q("SELECT DISTINCT seq FROM {body} WHERE seq NOT IN "
                        "(SELECT seq FROM {head}) ORDER BY seq")).fetchall()]

    def corrupt_for_tests(self, seq: int) -> None:
        """Overwrite a stored snapshot's bytes with zeros (tests of the fallback)."""
        with self._lock:
            self._conn.execute(self._q(
                "UPDATE {body} SET body = decode(repeat('00', length(body)), 'hex') "
                "WHERE seq = %s"), (seq,))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

