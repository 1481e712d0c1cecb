"""What both history backends share: the writer thread, batched writes, the SQL of the queries.

Rows are queued on the event loop as (statement, values) and written in batches on one
worker thread (one connection), together with the high-watermark seq of the last projected
command, in one transaction: after a crash the tables and the watermark agree, and the
service re-projects the journal past it. Rows are keyed by their natural ids (order id,
execution id, ledger and borrow entry id; symbol and funding time; symbol, price source,
interval and start time for a candle; seq and place for a change of the insurance fund), so
projecting a command twice changes nothing.

The SQL below is written once with ``?`` placeholders and upserts in the dialect SQLite and
PostgreSQL share (``ON CONFLICT ... DO UPDATE/NOTHING``); a backend supplies the connection,
the DDL, the transaction and the placeholder style. Candle volume and turnover are decimal
text: a month's turnover in atoms can pass 2**63, which neither database's integer holds.

`high_watermark` is the last seq *committed*, never one merely handed to the writer: it is
what recovery and the read-side checkpoints trust. A batch that fails (disk full, a lost
connection) is kept, in order, and the next write commits it first, together with the rows
that came after it, in one transaction; retries back off (`RETRY_MIN_S` doubling up to
`RETRY_MAX_S`) and a timer retries even when no new rows arrive. While rows are held back
the queries fail with `HistoryUnavailable` (the API answers 10016) rather than answer
without them. A backend reconnects a lost connection before the next attempt. Should the
rows held back pass `max_backlog_rows`, they are dropped and nothing more is written until
a restart, which re-projects from the journal past the (committed) watermark: memory stays
bounded and still no row is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from perpx.rows import (
    INSURANCE_MAX_LIMIT,
    RATES_MAX_LIMIT,
    Candle,
    ClosedCandles,
    FundingRateRecord,
    InsuranceRecord,
)
from perpx.store.history import Among, HistoryUnavailable, Page, decode_cursor, encode_cursor
from perpx.store.records import (
    BorrowRecord,
    ClosedPnlRecord,
    DeliveryRecord,
    ExecutionRecord,
    LedgerRecord,
    OrderRecord,
    SettlementRecord,
)

T = TypeVar("T")
log = logging.getLogger("perpx.history")
RETRY_MIN_S = 0.05  # the first retry of a failed batch
RETRY_MAX_S = 5.0  # the longest wait between two retries
MAX_BACKLOG_ROWS = 250_000  # rows held back before giving up until a restart (~100 MB)
Row = tuple[str, tuple[Any, ...]]
TABLES = ("orders", "executions", "closed_pnl", "ledger", "delivery", "settlements",
          "borrows", "klines", "funding", "insurance", "history_meta", "read_side")

_ENCODER = msgspec.msgpack.Encoder()


def record_bytes(record: Any) -> bytes:
    """Return a history row's ``record`` column: the record's msgpack."""
    return _ENCODER.encode(record)


# Room a record is encoded into: more than an order's record with its field names (~660
# bytes). `encode_into` grows an empty bytearray step by step (a realloc and a copy each:
# ~3 us of the 4.6 an order's record took, on the event loop), and truncates this one to
# what it wrote (a larger record still grows it).
_RECORD_ROOM = 1024


def record_bytearray(record: Any) -> bytearray:
    """Return the same msgpack as `record_bytes`, in a bytearray (what SQLite binds fastest)."""
    out = bytearray(_RECORD_ROOM)
    _ENCODER.encode_into(record, out)
    return out

_ORDER_SQL = (
    "INSERT INTO orders VALUES (?,?,?,?,?,?,?) ON CONFLICT (order_id) DO UPDATE SET "
    "account_id = excluded.account_id, symbol = excluded.symbol, status = excluded.status, "
    "order_link_id = excluded.order_link_id, created_ms = excluded.created_ms, "
    "record = excluded.record")
_EXECUTION_SQL = (
    "INSERT INTO executions (exec_id, account_id, symbol, order_id, order_link_id, exec_type, "
    "exec_ms, record) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (exec_id) DO NOTHING")
_CLOSED_SQL = (
    "INSERT INTO closed_pnl VALUES (?,?,?,?,?) ON CONFLICT (order_id) DO UPDATE SET "
    "account_id = excluded.account_id, symbol = excluded.symbol, "
    "updated_ms = excluded.updated_ms, record = excluded.record")
_LEDGER_SQL = (
    "INSERT INTO ledger (entry_id, account_id, coin, kind, ts_ms, record) "
    "VALUES (?,?,?,?,?,?) ON CONFLICT (entry_id) DO NOTHING")
_DELIVERY_SQL = (
    "INSERT INTO delivery (delivery_id, account_id, symbol, delivery_ms, record) "
    "VALUES (?,?,?,?,?) ON CONFLICT (delivery_id) DO NOTHING")
_SETTLEMENT_SQL = (
    "INSERT INTO settlements (entry_id, account_id, symbol, ts_ms, record) "
    "VALUES (?,?,?,?,?) ON CONFLICT (entry_id) DO NOTHING")
_BORROW_SQL = (
    "INSERT INTO borrows (entry_id, account_id, coin, ts_ms, record) "
    "VALUES (?,?,?,?,?) ON CONFLICT (entry_id) DO NOTHING")
_KLINE_SQL = (
    'INSERT INTO klines VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (symbol, kind, "interval", '
    "start_ms) DO UPDATE SET open = excluded.open, high = excluded.high, low = excluded.low, "
    "close = excluded.close, volume = excluded.volume, turnover = excluded.turnover, "
    "updated_ms = excluded.updated_ms")
_FUNDING_SQL = ("INSERT INTO funding VALUES (?,?,?,?,?) ON CONFLICT (symbol, ts_ms) "
                "DO NOTHING")
_INSURANCE_SQL = ("INSERT INTO insurance VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (seq, n) "
                  "DO NOTHING")
_WATERMARK_SQL = (
    "INSERT INTO history_meta VALUES ('seq', ?) ON CONFLICT (key) DO UPDATE SET value = "
    "CASE WHEN excluded.value > history_meta.value THEN excluded.value "
    "ELSE history_meta.value END")
_CANDLE_COLUMNS = "start_ms, open, high, low, close, volume, turnover, updated_ms"


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
_DELIVERY = _Table("delivery", "id", "delivery_ms", DeliveryRecord)
_SETTLEMENTS = _Table("settlements", "id", "ts_ms", SettlementRecord)
_BORROWS = _Table("borrows", "id", "ts_ms", BorrowRecord)


def _candle(row: Sequence[Any]) -> Candle:
    return Candle(int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]),
                  int(row[5]), int(row[6]), None if row[7] is None else int(row[7]))


class SqlHistory(ABC):
    """The `History` port over a DB-API connection owned by one worker thread."""

    max_backlog_rows = MAX_BACKLOG_ROWS
    # How a row's record is encoded for the driver (the same bytes either way; a backend
    # whose driver binds another buffer type faster says so).
    _record: Callable[[Any], bytes | bytearray] = staticmethod(record_bytes)

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="perpx-history")
        self._pending: list[Row] = []
        self._pending_seq = 0
        # Rows handed over and not yet taken by the writer thread (`_write_queued`).
        self._queue_lock = threading.Lock()
        self._queued: list[Row] = []
        self._queued_seq = 0
        self._closed = False
        # Writer thread only: the rows of failed batches, in order, and when to retry them.
        self._backlog: list[Row] = []
        self._backlog_seq = 0
        self._backoff = 0.0
        self._retry_at = 0.0
        self._failures = 0
        self._timer: threading.Timer | None = None
        self._given_up = ""  # the backlog was dropped: nothing is written until a restart
        # A reader of tables another process writes (an API gateway): the seq its other reads
        # show, which a query waits for the committed watermark to reach (`follow_writer`).
        self._read_floor: Callable[[], int] | None = None
        self._read_wait_s = 0.0
        try:
            self._executor.submit(self._open).result()
        except BaseException:
            self._executor.shutdown()
            raise
        self.high_watermark: int = self._executor.submit(self._read_watermark).result()

    # -- what a backend supplies (worker thread) ----------------------------------------------

    @abstractmethod
    def _open(self) -> None:
        """Connect and create the tables if they are missing."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[None]:
        """Return a context that commits on success and rolls back on error."""

    @abstractmethod
    def _execute(self, sql: str, values: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (``?`` placeholders); return its rows (empty if none)."""

    @abstractmethod
    def _executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Run one statement (``?`` placeholders) for each row, in order."""

    @abstractmethod
    def _disconnect(self) -> None:
        """Close the connection."""

    @abstractmethod
    def _reconnect(self) -> None:
        """Replace the connection if it was lost (before each write and query)."""

    @abstractmethod
    def _lost_errors(self) -> tuple[type[Exception], ...]:
        """Return the errors of an unreachable or failing database (not of a wrong query)."""

    # -- lifecycle -----------------------------------------------------------------------------

    def _read_watermark(self) -> int:
        rows = self._execute("SELECT value FROM history_meta WHERE key = 'seq'")
        return int(rows[0][0]) if rows else 0

    def reset(self) -> None:
        """Empty every history table (the journal it was built from is gone)."""
        def run() -> None:
            self._reconnect()
            with self._transaction():
                for table in TABLES:
                    self._execute(f"DELETE FROM {table}")
            self._backlog, self._backlog_seq, self._given_up = [], 0, ""
            self.high_watermark = 0
        self._executor.submit(run).result()

    def close(self) -> None:
        """Write what is queued (one last try for rows held back) and close the database."""
        if self._closed:
            return
        try:
            self._hand_over(force=True).result()
        except Exception as failure:
            # Nothing is lost: the watermark is the committed one, and the next start
            # re-projects the journal past it.
            log.warning("history closed with rows unwritten past seq %d: %r",
                        self.high_watermark, failure)
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._executor.submit(self._disconnect).result()
        self._executor.shutdown()

    # -- sinks (event loop) --------------------------------------------------------------------

    def order_final(self, record: OrderRecord) -> None:
        """Queue a final order."""
        self._pending.append((_ORDER_SQL, (
            record.order_id, record.account_id, record.symbol, record.status,
            record.order_link_id, record.created_ms, self._record(record))))

    def execution(self, record: ExecutionRecord) -> None:
        """Queue an execution row."""
        self._pending.append((_EXECUTION_SQL, (
            record.exec_id, record.account_id, record.symbol, record.order_id,
            record.order_link_id, record.exec_type, record.exec_ms, self._record(record))))

    def closed_pnl(self, record: ClosedPnlRecord) -> None:
        """Queue a closed-P&L row."""
        self._pending.append((_CLOSED_SQL, (
            record.order_id, record.account_id, record.symbol, record.updated_ms,
            self._record(record))))

    def ledger(self, record: LedgerRecord) -> None:
        """Queue a transaction-log row."""
        self._pending.append((_LEDGER_SQL, (
            record.entry_id, record.account_id, record.coin, record.kind, record.ts_ms,
            self._record(record))))

    def settlement(self, record: SettlementRecord) -> None:
        """Queue a session-settlement row."""
        self._pending.append((_SETTLEMENT_SQL, (
            record.entry_id, record.account_id, record.symbol, record.ts_ms,
            self._record(record))))

    def delivery(self, record: DeliveryRecord) -> None:
        """Queue a delivery-record row."""
        self._pending.append((_DELIVERY_SQL, (
            record.delivery_id, record.account_id, record.symbol, record.delivery_ms,
            self._record(record))))

    def borrow(self, record: BorrowRecord) -> None:
        """Queue a borrow-history row."""
        self._pending.append((_BORROW_SQL, (
            record.entry_id, record.account_id, record.coin, record.ts_ms,
            self._record(record))))

    def candle_closed(self, source: str, symbol: str, interval: str, candle: Candle) -> None:
        """Queue a closed candle."""
        self._pending.append((_KLINE_SQL, (
            symbol, source, interval, candle.start_ms, candle.open, candle.high, candle.low,
            candle.close, str(candle.volume_lots), str(candle.turnover_atoms),
            candle.updated_ms)))

    def funding_rate(self, record: FundingRateRecord) -> None:
        """Queue a settled funding rate."""
        self._pending.append((_FUNDING_SQL, (
            record.symbol, record.funding_rate_timestamp_ms, record.funding_rate,
            record.mark_price_ticks, record.seq)))

    def insurance(self, record: InsuranceRecord) -> None:
        """Queue one change of the insurance fund."""
        self._pending.append((_INSURANCE_SQL, (
            record.seq, record.n, record.coin, record.ts_ms, record.change_atoms,
            record.balance_atoms, record.reason, record.symbol)))

    def projected(self, seq: int) -> None:
        """Record that every command up to `seq` has been projected."""
        self._pending_seq = max(self._pending_seq, seq)

    def flush(self) -> Future[None]:
        """Hand the queued rows to the writer thread; the future resolves once committed.

        It fails with `HistoryUnavailable` if they could not be committed: they are then
        held back and retried before any later row (see the module's docstring).
        """
        return self._hand_over(force=False)

    def _hand_over(self, force: bool) -> Future[None]:
        rows, self._pending = self._pending, []
        with self._queue_lock:
            if self._queued:
                self._queued.extend(rows)
            else:
                self._queued = rows
            self._queued_seq = max(self._queued_seq, self._pending_seq)
        return self._executor.submit(self._write_queued, force)

    def _write_queued(self, force: bool) -> None:
        # Group commit: everything handed over by now goes in one transaction, so rows
        # handed over while the last commit ran share the next one (a commit costs ~0.5 ms
        # of this thread's CPU, whatever it carries: WAL frames for every page it touched).
        # A later task of the executor then finds nothing queued: its rows are committed
        # (its future resolves after the one that committed them), or held back after a
        # failure (`_failures`: then `_write` retries or raises, as for any batch).
        with self._queue_lock:
            rows, self._queued = self._queued, []
            seq, self._queued_seq = self._queued_seq, 0
        self._write(rows, seq, force)

    def _write(self, rows: list[Row], seq: int, force: bool = False) -> None:
        if self._given_up:
            return  # the journal re-projects all of it at the next start
        if self._failures:
            # An earlier batch failed: these rows go after it, never before it.
            self._backlog.extend(rows)
            self._backlog_seq = max(self._backlog_seq, seq)
            rows, seq = self._backlog, self._backlog_seq
            if not force and time.monotonic() < self._retry_at:
                raise HistoryUnavailable(
                    f"history writes failing; retrying rows past seq {self.high_watermark}")
        if not rows and seq <= self.high_watermark:
            # Nothing new (a query's flush): no transaction, and nothing held back either.
            self._backlog, self._backlog_seq, self._failures = [], 0, 0
            return
        try:
            self._reconnect()
            self._commit(rows, seq)
        except Exception as failure:
            self._failed(rows, seq, failure)
            raise HistoryUnavailable(f"history write failed: {failure!r}") from failure
        if self._failures:
            log.warning("history writes resumed after %d failures (watermark %d -> %d)",
                        self._failures, self.high_watermark, seq)
        self._backlog, self._backlog_seq = [], 0
        self._backoff, self._failures = 0.0, 0
        self.high_watermark = max(self.high_watermark, seq)

    def _failed(self, rows: list[Row], seq: int, failure: Exception) -> None:
        self._failures += 1
        if self._failures == 1:
            log.error("history write failed; holding the rows back and retrying",
                      exc_info=failure)
        else:
            log.warning("history write failed again (%d): %r", self._failures, failure)
        if len(rows) > self.max_backlog_rows:
            self._given_up = (f"{len(rows)} rows held back: history writes stop until a "
                              f"restart re-projects the journal past seq {self.high_watermark}")
            log.error("%s", self._given_up)
            self._backlog, self._backlog_seq, self._failures = [], 0, 0
            return
        self._backlog, self._backlog_seq = rows, seq
        self._backoff = min(max(self._backoff * 2, RETRY_MIN_S), RETRY_MAX_S)
        self._retry_at = time.monotonic() + self._backoff
        if self._timer is None or not self._timer.is_alive():
            # Retry even if no new rows come to carry these along.
            self._timer = threading.Timer(self._backoff, self._wake)
            self._timer.daemon = True
            self._timer.start()

    def _wake(self) -> None:
        if self._closed:
            return
        with contextlib.suppress(RuntimeError):  # shut down meanwhile
            self._executor.submit(self._write, [], 0, True)

    def _commit(self, rows: list[Row], seq: int) -> None:
        # One executemany per statement: each table has one statement, so the rows of a
        # table keep their order (a later replace wins), and the driver's per-call cost,
        # paid on this thread while holding the interpreter lock, is paid once per table
        # instead of once per row (it slowed the event loop's thread by a third).
        grouped: dict[str, list[tuple[Any, ...]]] = {}
        for sql, values in rows:
            grouped.setdefault(sql, []).append(values)
        with self._transaction():
            for sql, many in grouped.items():
                self._executemany(sql, many)
            if seq:
                self._execute(_WATERMARK_SQL, (seq,))

    async def run(self, query: Callable[[], T]) -> T:
        """Run `query` on the writer thread after every queued row is written.

        Raises `HistoryUnavailable` while rows are held back (it would answer without them)
        or when the database cannot be reached.
        """
        self.flush()
        floor = self._read_floor() if self._read_floor is not None else 0
        return await asyncio.wrap_future(self._executor.submit(self._query, query, floor))

    def follow_writer(self, floor: Callable[[], int], wait_s: float) -> None:
        """Read tables that another process writes, never behind the seq `floor()` gives.

        An API gateway reads the writer's tables and shows the rest from a follower at some
        seq: each query first waits (up to `wait_s`, then `HistoryUnavailable`) until the
        tables have committed that seq, so a history read never misses what other reads show.
        Such a reader queues no rows.
        """
        self._read_floor = floor
        self._read_wait_s = wait_s

    def _committed_at_least(self, floor: int) -> None:
        deadline = time.monotonic() + self._read_wait_s
        while (committed := self._read_watermark()) < floor:
            if time.monotonic() > deadline:
                raise HistoryUnavailable(f"history tables at seq {committed}, reads at {floor}")
            time.sleep(0.002)
        self.high_watermark = committed  # a reader's: what it has seen committed

    def _query(self, query: Callable[[], T], floor: int = 0) -> T:
        if self._failures or self._given_up:
            raise HistoryUnavailable(
                self._given_up or f"history rows past seq {self.high_watermark} not written yet")
        try:
            self._reconnect()
            if floor > self.high_watermark:
                self._committed_at_least(floor)
            return query()
        except self._lost_errors() as failure:
            raise HistoryUnavailable(f"history query failed: {failure!r}") from failure

    # -- read-side checkpoints (any thread) ----------------------------------------------------

    def save_checkpoint(self, seq: int, fingerprint: str, body: bytes, keep: int = 3) -> None:
        """Store the service's read side at `seq` (see `perpx.readside`); keep the newest few.

        Runs on the writer thread, after every row queued before it, and returns once
        committed. It lives here so that it is lost together with the tables it describes.
        """
        def run() -> None:
            self._reconnect()
            with self._transaction():
                self._execute("DELETE FROM read_side WHERE seq = ?", (seq,))
                self._execute("INSERT INTO read_side VALUES (?, ?, ?)", (seq, fingerprint, body))
                self._execute("DELETE FROM read_side WHERE seq NOT IN (SELECT seq FROM "
                              "read_side ORDER BY seq DESC LIMIT ?)", (keep,))
        self._executor.submit(run).result()

    def checkpoint_seqs(self) -> list[int]:
        """Return the seqs of the stored read-side checkpoints, newest first."""
        return self._executor.submit(lambda: [int(row[0]) for row in self._execute(
            "SELECT seq FROM read_side ORDER BY seq DESC")]).result()

    def load_checkpoint(self, seq: int) -> tuple[str, bytes] | None:
        """Return the (fingerprint, body) of the read-side checkpoint at `seq`, if stored."""
        rows = self._executor.submit(lambda: self._execute(
            "SELECT fingerprint, body FROM read_side WHERE seq = ?", (seq,))).result()
        return None if not rows else (str(rows[0][0]), bytes(rows[0][1]))

    # -- queries (writer thread; call through `run`) -------------------------------------------

    def _page(self, table: _Table, account_id: int, filters: dict[str, Any],
              start_ms: int | None, end_ms: int | None, limit: int,
              cursor: str) -> Page[Any]:
        where = ["account_id = ?"]
        values: list[Any] = [account_id]
        for column, value in filters.items():
            if isinstance(value, tuple):  # any of these (a category's symbols or coins)
                where.append(f"{column} IN ({', '.join('?' * len(value))})" if value
                             else "1 = 0")
                values.extend(value)
            elif value is not None and value != "":
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
        rows = self._execute(sql, [*values, limit + 1])
        decoder = msgspec.msgpack.Decoder(table.record_type)
        records = [decoder.decode(row[1]) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(records, encode_cursor(int(rows[limit - 1][0])) if more else "")

    def orders(self, account_id: int, *, symbol: Among = None,
               order_id: int | tuple[int, ...] | None = None,
               order_link_id: str | None = None,
               status: int | None = None, start_ms: int | None = None,
               end_ms: int | None = None, limit: int = 20,
               cursor: str = "") -> Page[OrderRecord]:
        """Return final orders of an account, newest first (`order_id`: one, or any of several)."""
        return self._page(_ORDERS, account_id, {"symbol": symbol, "order_id": order_id,
                                                "order_link_id": order_link_id,
                                                "status": status},
                          start_ms, end_ms, limit, cursor)

    def executions(self, account_id: int, *, symbol: Among = None,
                   order_id: int | None = None, order_link_id: str | None = None,
                   exec_type: str | None = None, start_ms: int | None = None,
                   end_ms: int | None = None, limit: int = 50,
                   cursor: str = "") -> Page[ExecutionRecord]:
        """Return executions of an account, newest first."""
        return self._page(_EXECUTIONS, account_id,
                          {"symbol": symbol, "order_id": order_id,
                           "order_link_id": order_link_id, "exec_type": exec_type},
                          start_ms, end_ms, limit, cursor)

    def closed_pnls(self, account_id: int, *, symbol: Among = None,
                    start_ms: int | None = None, end_ms: int | None = None, limit: int = 50,
                    cursor: str = "") -> Page[ClosedPnlRecord]:
        """Return closed-P&L rows of an account, newest first."""
        return self._page(_CLOSED, account_id, {"symbol": symbol}, start_ms, end_ms, limit,
                          cursor)

    def deliveries(self, account_id: int, *, symbol: Among = None,
                   start_ms: int | None = None, end_ms: int | None = None, limit: int = 20,
                   cursor: str = "") -> Page[DeliveryRecord]:
        """Return delivery-record rows of an account, newest first."""
        return self._page(_DELIVERY, account_id, {"symbol": symbol}, start_ms, end_ms, limit,
                          cursor)

    def ledger_entries(self, account_id: int, *, coin: Among = None,
                       kind: str | None = None, start_ms: int | None = None,
                       end_ms: int | None = None, limit: int = 20,
                       cursor: str = "") -> Page[LedgerRecord]:
        """Return transaction-log rows of an account, newest first."""
        return self._page(_LEDGER, account_id, {"coin": coin, "kind": kind}, start_ms, end_ms,
                          limit, cursor)

    def settlements(self, account_id: int, *, symbol: str | None = None,
                    start_ms: int | None = None, end_ms: int | None = None, limit: int = 20,
                    cursor: str = "") -> Page[SettlementRecord]:
        """Return session-settlement rows of an account, newest first."""
        return self._page(_SETTLEMENTS, account_id, {"symbol": symbol}, start_ms, end_ms,
                          limit, cursor)

    def borrows(self, account_id: int, *, coin: str | None = None,
                start_ms: int | None = None, end_ms: int | None = None, limit: int = 20,
                cursor: str = "") -> Page[BorrowRecord]:
        """Return borrow-history rows of an account, newest first."""
        return self._page(_BORROWS, account_id, {"coin": coin}, start_ms, end_ms, limit, cursor)

    def funding_rates(self, symbol: str, *, start_ms: int | None = None,
                      end_ms: int | None = None, limit: int = 200) -> list[FundingRateRecord]:
        """Return the `limit` latest settled rates in [start, end], newest first.

        As GET /v5/market/funding/history (and `FundingHistory.rates`).
        """
        if not 1 <= limit <= RATES_MAX_LIMIT:
            raise ValueError(f"limit must be in [1, {RATES_MAX_LIMIT}], was {limit}")
        where: list[str] = ["symbol = ?"]
        values: list[Any] = [symbol]
        if start_ms is not None:
            where.append("ts_ms >= ?")
            values.append(start_ms)
        if end_ms is not None:
            where.append("ts_ms <= ?")
            values.append(end_ms)
        rows = self._execute(f"SELECT symbol, rate, ts_ms, mark_price, seq FROM funding WHERE "
                             f"{' AND '.join(where)} ORDER BY ts_ms DESC LIMIT ?",
                             [*values, limit])
        return [FundingRateRecord(str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]))
                for r in rows]

    def insurance_history(self, coin: str, *, start_ms: int | None = None,
                          end_ms: int | None = None,
                          limit: int = 200) -> list[InsuranceRecord]:
        """Return the `limit` latest changes of the fund in `coin` in [start, end], newest first.

        Newest first by time, then by seq and place (several changes can share a time).
        """
        if not 1 <= limit <= INSURANCE_MAX_LIMIT:
            raise ValueError(f"limit must be in [1, {INSURANCE_MAX_LIMIT}], was {limit}")
        where: list[str] = ["coin = ?"]
        values: list[Any] = [coin]
        if start_ms is not None:
            where.append("ts_ms >= ?")
            values.append(start_ms)
        if end_ms is not None:
            where.append("ts_ms <= ?")
            values.append(end_ms)
        rows = self._execute(
            "SELECT coin, ts_ms, seq, n, change_atoms, balance_atoms, reason, symbol FROM "
            f"insurance WHERE {' AND '.join(where)} ORDER BY ts_ms DESC, seq DESC, n DESC "
            "LIMIT ?", [*values, limit])
        return [InsuranceRecord(str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]),
                                int(r[5]), str(r[6]), str(r[7])) for r in rows]

    def closed_candles(self, source: str, symbol: str, interval: str) -> ClosedCandles:
        """Return the stored (closed) candles of one track, for `select_candles`."""
        return _StoredTrack(self, source, symbol, interval)

    def candle_rows(self, source: str, symbol: str, interval: str, where: str,
                    values: Sequence[Any], order: str, limit: int) -> list[Candle]:
        """Return one track's stored candles matching `where`, in `order`, at most `limit`."""
        rows = self._execute(
            f'SELECT {_CANDLE_COLUMNS} FROM klines WHERE symbol = ? AND kind = ? AND '
            f'"interval" = ?{where} ORDER BY start_ms {order} LIMIT ?',
            [symbol, source, interval, *values, limit])
        return [_candle(row) for row in rows]


class _StoredTrack:
    """`ClosedCandles` over the ``klines`` table (worker thread only)."""

    def __init__(self, store: SqlHistory, source: str, symbol: str, interval: str) -> None:
        self._store = store
        self._key = (source, symbol, interval)

    def between(self, low_ms: int | None, high_ms: int | None, limit: int, *,
                newest_first: bool) -> list[Candle]:
        if limit <= 0:
            return []
        where, values = "", list[Any]()
        for bound, op in ((low_ms, ">="), (high_ms, "<=")):
            if bound is not None:
                where += f" AND start_ms {op} ?"
                values.append(bound)
        return self._store.candle_rows(*self._key, where, values,
                                       "DESC" if newest_first else "ASC", limit)

    def before(self, start_ms: int) -> Candle | None:
        rows = self._store.candle_rows(*self._key, " AND start_ms < ?", [start_ms], "DESC", 1)
        return rows[0] if rows else None

    def first(self) -> Candle | None:
        rows = self._store.candle_rows(*self._key, "", [], "ASC", 1)
        return rows[0] if rows else None

