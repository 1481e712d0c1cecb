"""The history tables in SQLite: a ``history.db`` file beside the journal (or in memory).

A file of its own rather than tables in ``journal.db``: SQLite has one writer lock per
database file, and the history's batches would then queue the journal's group commits
behind them on the hot path. Beside it, the two files are one database in the sense that
matters (one folder, backed up and lost together; the history is rebuilt from the journal
past its watermark, and emptied when it is ahead of the journal). WAL with
``synchronous=NORMAL``: a power cut may lose the last batches, rows and watermark together,
and they are re-projected. A write that fails (disk full, an I/O error) rolls back whole
and is retried by `SqlHistory` before any later row.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from perpx.store.history_sql import SqlHistory, record_bytearray

_SCHEMA = """
CREATE TABLE IF NOT EXISTS history_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    order_id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL, symbol TEXT NOT NULL,
    status INTEGER NOT NULL, order_link_id TEXT NOT NULL, created_ms INTEGER NOT NULL,
    record BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS orders_account ON orders (account_id, order_id);
CREATE TABLE IF NOT EXISTS executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, exec_id TEXT NOT NULL UNIQUE,
    account_id INTEGER NOT NULL, symbol TEXT NOT NULL, order_id INTEGER NOT NULL,
    order_link_id TEXT NOT NULL, exec_type TEXT NOT NULL, exec_ms INTEGER NOT NULL,
    record BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS executions_account ON executions (account_id, id);
CREATE TABLE IF NOT EXISTS closed_pnl (
    order_id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL, symbol TEXT NOT NULL,
    updated_ms INTEGER NOT NULL, record BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS closed_pnl_account ON closed_pnl (account_id, order_id);
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT, entry_id TEXT NOT NULL UNIQUE,
    account_id INTEGER NOT NULL, coin TEXT NOT NULL, kind TEXT NOT NULL,
    ts_ms INTEGER NOT NULL, record BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS ledger_account ON ledger (account_id, id);
CREATE TABLE IF NOT EXISTS delivery (
    id INTEGER PRIMARY KEY AUTOINCREMENT, delivery_id TEXT NOT NULL UNIQUE,
    account_id INTEGER NOT NULL, symbol TEXT NOT NULL, delivery_ms INTEGER NOT NULL,
    record BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS delivery_account ON delivery (account_id, id);
CREATE TABLE IF NOT EXISTS settlements (
    id INTEGER PRIMARY KEY AUTOINCREMENT, entry_id TEXT NOT NULL UNIQUE,
    account_id INTEGER NOT NULL, symbol TEXT NOT NULL, ts_ms INTEGER NOT NULL,
    record BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS settlements_account ON settlements (account_id, id);
CREATE TABLE IF NOT EXISTS borrows (
    id INTEGER PRIMARY KEY AUTOINCREMENT, entry_id TEXT NOT NULL UNIQUE,
    account_id INTEGER NOT NULL, coin TEXT NOT NULL, ts_ms INTEGER NOT NULL,
    record BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS borrows_account ON borrows (account_id, id);
CREATE TABLE IF NOT EXISTS klines (
    symbol TEXT NOT NULL, kind TEXT NOT NULL, "interval" TEXT NOT NULL,
    start_ms INTEGER NOT NULL, open INTEGER NOT NULL, high INTEGER NOT NULL,
    low INTEGER NOT NULL, close INTEGER NOT NULL, volume TEXT NOT NULL,
    turnover TEXT NOT NULL, updated_ms INTEGER,
    PRIMARY KEY (symbol, kind, "interval", start_ms)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS funding (
    symbol TEXT NOT NULL, ts_ms INTEGER NOT NULL, rate INTEGER NOT NULL,
    mark_price INTEGER NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (symbol, ts_ms)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS insurance (
    seq INTEGER NOT NULL, n INTEGER NOT NULL, coin TEXT NOT NULL, ts_ms INTEGER NOT NULL,
    change_atoms INTEGER NOT NULL, balance_atoms INTEGER NOT NULL, reason TEXT NOT NULL,
    symbol TEXT NOT NULL, PRIMARY KEY (seq, n)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS insurance_coin ON insurance (coin, ts_ms);
CREATE TABLE IF NOT EXISTS read_side (
    seq INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL, body BLOB NOT NULL);
"""


class SqliteHistory(SqlHistory):
    """The history tables in one SQLite file (`path`), or in memory with `path=None`."""

    # sqlite3 binds int, float, str and bytearray at once, but looks a `bytes` up in its
    # adapter registry first (a failed lookup that formats and drops an AttributeError,
    # ~3,300 instructions per blob, as for the journal's `SqliteJournal.append`): records
    # are encoded straight into a bytearray. The stored BLOB is the same.
    _record = staticmethod(record_bytearray)

    def __init__(self, path: str | Path | None = None) -> None:
        self._target = ":memory:" if path is None else str(path)
        self._db: sqlite3.Connection | None = None
        super().__init__()

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("history is closed")
        return self._db

    def _open(self) -> None:
        db = sqlite3.connect(self._target, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        self._db = db

    def _transaction(self) -> AbstractContextManager[None]:
        return self._begin()

    @contextmanager
    def _begin(self) -> Iterator[None]:
        db = self._conn
        db.execute("BEGIN")
        try:
            yield
            db.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (disk full, I/O error): the first error
            # is the one to report, and the connection must leave the transaction.
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise

    def _reconnect(self) -> None:
        pass  # a file's connection is not lost; a failed statement is simply retried

    def _lost_errors(self) -> tuple[type[Exception], ...]:
        # Disk full, I/O errors, a locked or unopenable file: all may pass.
        return (sqlite3.OperationalError, OSError)

    def _execute(self, sql: str, values: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, values).fetchall()

    def _executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self._conn.executemany(sql, rows)

    def _disconnect(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
