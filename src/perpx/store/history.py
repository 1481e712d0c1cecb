"""The history read models' base: the `History` port, its pages, cursors and errors.

Read models built from events, in the same database as the journal (issue #7): final
orders, executions, closed P&L, the wallet's transaction log, the borrow history, settled
funding rates, closed candles and the insurance fund's changes, plus the service's read-side
checkpoints. They are what the API's history endpoints read. Two backends implement the port
over the same tables and queries:
`perpx.store.history_sqlite` (a ``history.db`` beside the SQLite journal) and
`perpx.store.history_postgres` (the journal's PostgreSQL schema); the shared machinery (a
writer thread, batched writes, the ``history_meta`` high watermark committed in the same
transaction as the rows, idempotent upserts by natural key) is `perpx.store.history_sql`.
This module sits below them all; `perpx.store.open_history` (above the backends) picks one.
The tables are typed on plain rows (`perpx.store.records`, `perpx.rows`), never on the read
models that fold them.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeAlias, TypeVar

from perpx.rows import Candle, ClosedCandles, FundingRateRecord, InsuranceRecord
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
HISTORY_FILE = "history.db"
# A history filter: one value, any of several (a category's symbols or coins; none of an
# empty tuple), or None for no filter.
Among: TypeAlias = str | tuple[str, ...] | None


class CursorError(ValueError):
    """A pagination cursor this store did not issue."""


class HistoryUnavailable(RuntimeError):
    """The history tables cannot be written or read right now; writes are being retried."""


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


class History(Protocol):
    """The history tables of one exchange: written from the event loop, read through `run`.

    Writes (`order_final` ... `projected`) queue on the event loop; `flush` hands the queue to
    the writer, which commits the rows and the high watermark in one transaction. Queries run
    on the writer's thread after every queued write (call them through `run`), so a client
    reads its own fills at once.
    """

    high_watermark: int  # the seq of the last command whose rows are committed

    def order_final(self, record: OrderRecord) -> None:
        """Queue a final order."""

    def execution(self, record: ExecutionRecord) -> None:
        """Queue an execution row."""

    def closed_pnl(self, record: ClosedPnlRecord) -> None:
        """Queue a closed-P&L row."""

    def ledger(self, record: LedgerRecord) -> None:
        """Queue a transaction-log row."""

    def delivery(self, record: DeliveryRecord) -> None:
        """Queue a delivery-record row."""

    def settlement(self, record: SettlementRecord) -> None:
        """Queue a session-settlement row (USDC contracts)."""

    def borrow(self, record: BorrowRecord) -> None:
        """Queue a borrow-history row (an hour's interest on a liability)."""

    def candle_closed(self, source: str, symbol: str, interval: str, candle: Candle) -> None:
        """Queue a closed candle."""

    def funding_rate(self, record: FundingRateRecord) -> None:
        """Queue a settled funding rate."""

    def insurance(self, record: InsuranceRecord) -> None:
        """Queue one change of the insurance fund."""

    def projected(self, seq: int) -> None:
        """Record that every command up to `seq` has been projected."""

    def flush(self) -> Future[None]:
        """Hand the queued rows to the writer; the future resolves once committed."""

    async def run(self, query: Callable[[], T]) -> T:
        """Run `query` on the writer's thread after every queued row is written."""

    def follow_writer(self, floor: Callable[[], int], wait_s: float) -> None:
        """Read tables another process writes; each query waits for them to commit `floor()`."""

    def reset(self) -> None:
        """Empty every history table (the journal it was built from is gone)."""

    def close(self) -> None:
        """Write what is queued and close the database."""

    def save_checkpoint(self, seq: int, fingerprint: str, body: bytes, keep: int = 3) -> None:
        """Store the service's read side at `seq`; keep the newest `keep`."""

    def checkpoint_seqs(self) -> list[int]:
        """Return the seqs of the stored read-side checkpoints, newest first."""

    def load_checkpoint(self, seq: int) -> tuple[str, bytes] | None:
        """Return the (fingerprint, body) of the read-side checkpoint at `seq`, if stored."""

    def orders(self, account_id: int, *, symbol: Among = None,
               order_id: int | tuple[int, ...] | None = None,
               order_link_id: str | None = None,
               status: int | None = None, start_ms: int | None = None,
               end_ms: int | None = None, limit: int = 20,
               cursor: str = "") -> Page[OrderRecord]:
        """Return final orders of an account, newest first (`order_id`: one, or any of several)."""

    def executions(self, account_id: int, *, symbol: Among = None,
                   order_id: int | None = None, order_link_id: str | None = None,
                   exec_type: str | None = None, start_ms: int | None = None,
                   end_ms: int | None = None, limit: int = 50,
                   cursor: str = "") -> Page[ExecutionRecord]:
        """Return executions of an account, newest first."""

    def closed_pnls(self, account_id: int, *, symbol: Among = None,
                    start_ms: int | None = None, end_ms: int | None = None, limit: int = 50,
                    cursor: str = "") -> Page[ClosedPnlRecord]:
        """Return closed-P&L rows of an account, newest first."""

    def deliveries(self, account_id: int, *, symbol: Among = None,
                   start_ms: int | None = None, end_ms: int | None = None, limit: int = 20,
                   cursor: str = "") -> Page[DeliveryRecord]:
        """Return delivery-record rows of an account, newest first."""

    def ledger_entries(self, account_id: int, *, coin: Among = None,
                       kind: str | None = None, start_ms: int | None = None,
                       end_ms: int | None = None, limit: int = 20,
                       cursor: str = "") -> Page[LedgerRecord]:
        """Return transaction-log rows of an account, newest first."""

    def settlements(self, account_id: int, *, symbol: str | None = None,
                    start_ms: int | None = None, end_ms: int | None = None, limit: int = 20,
                    cursor: str = "") -> Page[SettlementRecord]:
        """Return session-settlement rows of an account, newest first."""

    def borrows(self, account_id: int, *, coin: str | None = None,
                start_ms: int | None = None, end_ms: int | None = None, limit: int = 20,
                cursor: str = "") -> Page[BorrowRecord]:
        """Return borrow-history rows of an account, newest first."""

    def funding_rates(self, symbol: str, *, start_ms: int | None = None,
                      end_ms: int | None = None, limit: int = 200) -> list[FundingRateRecord]:
        """Return the `limit` latest settled rates in [start, end], newest first."""

    def insurance_history(self, coin: str, *, start_ms: int | None = None,
                          end_ms: int | None = None,
                          limit: int = 200) -> list[InsuranceRecord]:
        """Return the `limit` latest changes of the fund in `coin` in [start, end], newest first."""

    def closed_candles(self, source: str, symbol: str, interval: str) -> ClosedCandles:
        """Return the stored (closed) candles of one track, for `select_candles`."""


def history_path(journal_path: str | Path) -> Path:
    """Return where the history of a SQLite journal lives: ``history.db`` in its folder."""
    return Path(journal_path).parent / HISTORY_FILE
