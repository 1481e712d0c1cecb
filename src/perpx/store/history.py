"""Account history tables in SQLite: final orders, executions, closed P&L and the ledger.

The `Projector` (`perpx.store.records`) hands finished records to `History`, which queues
them on the event loop and writes them in batches on its own thread (one SQLite connection,
WAL), together with the high-watermark `seq` of the last projected command, in one
transaction. Rows are keyed by their natural ids (order id, execution id, ledger entry id),
so projecting a command twice changes nothing: after a restart the service re-projects the
journal past the watermark.

Queries run on the same thread after every queued write, so a client reads its own fills at
once. The query surface is the five methods below (each: filters, a time window, `limit`
and an opaque cursor); a PostgreSQL variant implements the same methods over the same
tables.
"""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec

from perpx.store.records import ClosedPnlRecord, ExecutionRecord, LedgerRecord, OrderRecord

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
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
CREATE TABLE IF NOT EXISTS read_side (
    seq INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL, body BLOB NOT NULL);
"""

_ENCODER = msgspec.msgpack.Encoder()


class CursorError(ValueError):
    """A pagination cursor this store did not issue."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of newest-first records and the cursor of the next ('' when none)."""

    records: list[T]
    next_cursor: str


def encode_cursor(key: int) -> str:
    """Return an opaque URL-safe cursor for a row key (base64url, no padding)."""
    return base64.urlsafe_b64encode(f"k{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Return the row key of a cursor made by `encode_cursor`; CursorError otherwise."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as bad:
        raise CursorError("cursor invalid") from bad
    if not text.startswith("k") or not text[1:].isdigit() or len(text) > 24:
        raise CursorError("cursor invalid")
    return int(text[1:])


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    key: str
    time_column: str
    record_type: type[Any]


_ORDERS = _Table("orders", "order_id", "created_ms", OrderRecord)
_EXECUTIONS = _Table("executions", "id", "exec_ms", ExecutionRecord)
_CLOSED = _Table("closed_pnl", "order_id", "updated_ms", ClosedPnlRecord)
_LEDGER = _Table("ledger", "id", "ts_ms", LedgerRecord)


class History:
    """The history tables of one data folder (or in memory with `path=None`)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="perpx-history")
        self._lock = threading.Lock()
        self._pending: list[tuple[str, tuple[Any, ...]]] = []
        self._pending_seq = 0
        self._closed = False
        target = ":memory:" if path is None else str(path)
        self._db: sqlite3.Connection = self._executor.submit(self._open, target).result()
        self.high_watermark: int = self._executor.submit(self._read_watermark).result()

    # -- lifecycle (worker thread) -----------------------------------------------------------

    @staticmethod
    def _open(target: str) -> sqlite3.Connection:
        db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        return db

    def _read_watermark(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key='seq'").fetchone()
        return int(row[0]) if row else 0

    def reset(self) -> None:
        """Empty every history table (the journal it was built from is gone)."""
        def run() -> None:
            self._db.execute("BEGIN")
            for table in ("orders", "executions", "closed_pnl", "ledger", "meta", "read_side"):
                self._db.execute(f"DELETE FROM {table}")
            self._db.execute("COMMIT")
        self._executor.submit(run).result()
        self.high_watermark = 0

    def close(self) -> None:
        """Write what is queued and close the database."""
        if self._closed:
            return
        self.flush().result()
        self._closed = True
        self._executor.submit(self._db.close).result()
        self._executor.shutdown()

    # -- RecordSink (event loop) -------------------------------------------------------------

    def order_final(self, record: OrderRecord) -> None:
        """Queue a final order."""
        self._pending.append(("INSERT OR REPLACE INTO orders VALUES (?,?,?,?,?,?,?)", (
            record.order_id, record.account_id, record.symbol, record.status,
            record.order_link_id, record.created_ms, _ENCODER.encode(record))))

    def execution(self, record: ExecutionRecord) -> None:
        """Queue an execution row."""
        self._pending.append((
            "INSERT OR IGNORE INTO executions (exec_id, account_id, symbol, order_id, "
            "order_link_id, exec_type, exec_ms, record) VALUES (?,?,?,?,?,?,?,?)", (
                record.exec_id, record.account_id, record.symbol, record.order_id,
                record.order_link_id, record.exec_type, record.exec_ms,
                _ENCODER.encode(record))))

    def closed_pnl(self, record: ClosedPnlRecord) -> None:
        """Queue a closed-P&L row."""
        self._pending.append(("INSERT OR REPLACE INTO closed_pnl VALUES (?,?,?,?,?)", (
            record.order_id, record.account_id, record.symbol, record.updated_ms,
            _ENCODER.encode(record))))

    def ledger(self, record: LedgerRecord) -> None:
        """Queue a transaction-log row."""
        self._pending.append((
            "INSERT OR IGNORE INTO ledger (entry_id, account_id, coin, kind, ts_ms, record) "
            "VALUES (?,?,?,?,?,?)", (
                record.entry_id, record.account_id, record.coin, record.kind, record.ts_ms,
                _ENCODER.encode(record))))

    def projected(self, seq: int) -> None:
        """Record that every command up to `seq` has been projected."""
        self._pending_seq = max(self._pending_seq, seq)

    def flush(self) -> Future[None]:
        """Hand the queued rows to the writer thread; the future resolves once committed."""
        rows, self._pending = self._pending, []
        seq = self._pending_seq
        if seq > self.high_watermark:
            self.high_watermark = seq
        return self._executor.submit(self._write, rows, seq)

    def _write(self, rows: list[tuple[str, tuple[Any, ...]]], seq: int) -> None:
        if not rows and not seq:
            return
        db = self._db
        db.execute("BEGIN")
        try:
            # One executemany per statement: each table has one statement, so the rows of a
            # table keep their order (a later replace wins), and the sqlite3 module's per-call
            # cost, paid on this thread while holding the interpreter lock, is paid once per
            # table instead of once per row (it slowed the event loop's thread by a third).
            grouped: dict[str, list[tuple[Any, ...]]] = {}
            for sql, values in rows:
                grouped.setdefault(sql, []).append(values)
            for sql, many in grouped.items():
                db.executemany(sql, many)
            if seq:
                db.execute("INSERT INTO meta VALUES ('seq', ?) ON CONFLICT(key) DO UPDATE "
                           "SET value = max(value, excluded.value)", (seq,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def run(self, query: Callable[[], T]) -> T:
        """Run `query` on the writer thread after every queued row is written."""
        self.flush()
        return await asyncio.wrap_future(self._executor.submit(query))

    # -- read-side checkpoints (any thread) ---------------------------------------------------

    def save_checkpoint(self, seq: int, fingerprint: str, body: bytes, keep: int = 3) -> None:
        """Store the service's read side at `seq` (see `perpx.readside`); keep the newest few.

        Runs on the writer thread, after every row queued before it, and returns once
        committed. It lives here so that it is lost together with the tables it describes.
        """
        def run() -> None:
            self._db.execute("BEGIN")
            self._db.execute("INSERT OR REPLACE INTO read_side VALUES (?, ?, ?)",
                             (seq, fingerprint, body))
            self._db.execute("DELETE FROM read_side WHERE seq NOT IN (SELECT seq FROM "
                             "read_side ORDER BY seq DESC LIMIT ?)", (keep,))
            self._db.execute("COMMIT")
        self._executor.submit(run).result()

    def checkpoint_seqs(self) -> list[int]:
        """Return the seqs of the stored read-side checkpoints, newest first."""
        return self._executor.submit(lambda: [row[0] for row in self._db.execute(
            "SELECT seq FROM read_side ORDER BY seq DESC")]).result()

    def load_checkpoint(self, seq: int) -> tuple[str, bytes] | None:
        """Return the (fingerprint, body) of the read-side checkpoint at `seq`, if stored."""
        row = self._executor.submit(lambda: self._db.execute(
            "SELECT fingerprint, body FROM read_side WHERE seq = ?", (seq,)).fetchone()).result()
        return None if row is None else (str(row[0]), bytes(row[1]))

    # -- queries (writer thread; call through `run`) -----------------------------------------

    def _page(self, table: _Table, account_id: int, filters: dict[str, Any],
              start_ms: int | None, end_ms: int | None, limit: int,
              cursor: str) -> Page[Any]:
        where = ["account_id = ?"]
        values: list[Any] = [account_id]
        for column, value in filters.items():
            if value is not None and value != "":
                where.append(f"{column} = ?")
                values.append(value)
        if start_ms is not None:
            where.append(f"{table.time_column} >= ?")
            values.append(start_ms)
        if end_ms is not None:
            where.append(f"{table.time_column} <= ?")
            values.append(end_ms)
        if cursor:
            where.append(f"{table.key} < ?")
            values.append(decode_cursor(cursor))
        sql = (f"SELECT {table.key}, record FROM {table.name} WHERE {' AND '.join(where)} "
               f"ORDER BY {table.key} DESC LIMIT ?")
        rows = self._db.execute(sql, [*values, limit + 1]).fetchall()
        decoder = msgspec.msgpack.Decoder(table.record_type)
        records = [decoder.decode(row[1]) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(records, encode_cursor(rows[limit - 1][0]) if more else "")

    def orders(self, account_id: int, *, symbol: str | None = None,
               order_id: int | None = None, order_link_id: str | None = None,
               status: int | None = None, start_ms: int | None = None,
               end_ms: int | None = None, limit: int = 20,
               cursor: str = "") -> Page[OrderRecord]:
        """Return final orders of an account, newest first."""
        return self._page(_ORDERS, account_id, {"symbol": symbol, "order_id": order_id,
                                                "order_link_id": order_link_id,
                                                "status": status},
                          start_ms, end_ms, limit, cursor)

    def executions(self, account_id: int, *, symbol: str | None = None,
                   order_id: int | None = None, order_link_id: str | None = None,
                   exec_type: str | None = None, start_ms: int | None = None,
                   end_ms: int | None = None, limit: int = 50,
                   cursor: str = "") -> Page[ExecutionRecord]:
        """Return executions of an account, newest first."""
        return self._page(_EXECUTIONS, account_id,
                          {"symbol": symbol, "order_id": order_id,
                           "order_link_id": order_link_id, "exec_type": exec_type},
                          start_ms, end_ms, limit, cursor)

    def closed_pnls(self, account_id: int, *, symbol: str | None = None,
                    start_ms: int | None = None, end_ms: int | None = None, limit: int = 50,
                    cursor: str = "") -> Page[ClosedPnlRecord]:
        """Closed-P&L rows of an account, newest first."""
        return self._page(_CLOSED, account_id, {"symbol": symbol}, start_ms, end_ms, limit,
                          cursor)

    def ledger_entries(self, account_id: int, *, coin: str | None = None,
                       kind: str | None = None, start_ms: int | None = None,
                       end_ms: int | None = None, limit: int = 20,
                       cursor: str = "") -> Page[LedgerRecord]:
        """Transaction-log rows of an account, newest first."""
        return self._page(_LEDGER, account_id, {"coin": coin, "kind": kind}, start_ms, end_ms,
                          limit, cursor)
