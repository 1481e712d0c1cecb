"""The history tables in PostgreSQL, in the journal's schema, written by one worker thread.

The same tables, SQL and watermark as SQLite (`perpx.store.history_sql`), on a connection of
their own (psycopg 3) with ``search_path`` set to the journal's schema. A batch is one
transaction: each statement's rows go in with `executemany`, which psycopg pipelines (one
round trip per batch, not per row); upserts keep re-projection idempotent, which rules out a
plain ``COPY``. The connection commits with ``synchronous_commit = off``: the history is
derived, and a server crash can only lose its newest batches whole, rows and watermark
together, which the service then re-projects from the journal (the journal itself keeps
synchronous commits).

A lost connection (the server restarted, the backend was terminated, the network dropped)
is replaced before the next write or query; the batch it failed is retried whole by
`SqlHistory`, and queries fail with `HistoryUnavailable` until the rows are written again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import psycopg
from psycopg import sql

from perpx.store.history_sql import SqlHistory
from perpx.store.journal import JournalError

log = logging.getLogger("perpx.history")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS history_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    order_id BIGINT PRIMARY KEY, account_id BIGINT NOT NULL, symbol TEXT NOT NULL,
    status INTEGER NOT NULL, order_link_id TEXT NOT NULL, created_ms BIGINT NOT NULL,
    record BYTEA NOT NULL);
CREATE INDEX IF NOT EXISTS orders_account ON orders (account_id, order_id);
CREATE TABLE IF NOT EXISTS executions (
    id BIGSERIAL PRIMARY KEY, exec_id TEXT NOT NULL UNIQUE,
    account_id BIGINT NOT NULL, symbol TEXT NOT NULL, order_id BIGINT NOT NULL,
    order_link_id TEXT NOT NULL, exec_type TEXT NOT NULL, exec_ms BIGINT NOT NULL,
    record BYTEA NOT NULL);
CREATE INDEX IF NOT EXISTS executions_account ON executions (account_id, id);
CREATE TABLE IF NOT EXISTS closed_pnl (
    order_id BIGINT PRIMARY KEY, account_id BIGINT NOT NULL, symbol TEXT NOT NULL,
    updated_ms BIGINT NOT NULL, record BYTEA NOT NULL);
CREATE INDEX IF NOT EXISTS closed_pnl_account ON closed_pnl (account_id, order_id);
CREATE TABLE IF NOT EXISTS ledger (
    id BIGSERIAL PRIMARY KEY, entry_id TEXT NOT NULL UNIQUE,
    account_id BIGINT NOT NULL, coin TEXT NOT NULL, kind TEXT NOT NULL,
    ts_ms BIGINT NOT NULL, record BYTEA NOT NULL);
CREATE INDEX IF NOT EXISTS ledger_account ON ledger (account_id, id);
CREATE TABLE IF NOT EXISTS delivery (
    id BIGSERIAL PRIMARY KEY, delivery_id TEXT NOT NULL UNIQUE,
    account_id BIGINT NOT NULL, symbol TEXT NOT NULL, delivery_ms BIGINT NOT NULL,
    record BYTEA NOT NULL);
CREATE INDEX IF NOT EXISTS delivery_account ON delivery (account_id, id);
CREATE TABLE IF NOT EXISTS settlements (
    id BIGSERIAL PRIMARY KEY, entry_id TEXT NOT NULL UNIQUE,
    account_id BIGINT NOT NULL, symbol TEXT NOT NULL, ts_ms BIGINT NOT NULL,
    record BYTEA NOT NULL);
CREATE INDEX IF NOT EXISTS settlements_account ON settlements (account_id, id);
CREATE TABLE IF NOT EXISTS borrows (
    id BIGSERIAL PRIMARY KEY, entry_id TEXT NOT NULL UNIQUE,
    account_id BIGINT NOT NULL, coin TEXT NOT NULL, ts_ms BIGINT NOT NULL,
    record BYTEA NOT NULL);
CREATE INDEX IF NOT EXISTS borrows_account ON borrows (account_id, id);
CREATE TABLE IF NOT EXISTS klines (
    symbol TEXT NOT NULL, kind TEXT NOT NULL, "interval" TEXT NOT NULL,
    start_ms BIGINT NOT NULL, open BIGINT NOT NULL, high BIGINT NOT NULL,
    low BIGINT NOT NULL, close BIGINT NOT NULL, volume TEXT NOT NULL,
    turnover TEXT NOT NULL, updated_ms BIGINT,
    PRIMARY KEY (symbol, kind, "interval", start_ms));
CREATE TABLE IF NOT EXISTS funding (
    symbol TEXT NOT NULL, ts_ms BIGINT NOT NULL, rate BIGINT NOT NULL,
    mark_price BIGINT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (symbol, ts_ms));
CREATE TABLE IF NOT EXISTS insurance (
    seq BIGINT NOT NULL, n INTEGER NOT NULL, coin TEXT NOT NULL, ts_ms BIGINT NOT NULL,
    change_atoms BIGINT NOT NULL, balance_atoms BIGINT NOT NULL, reason TEXT NOT NULL,
    symbol TEXT NOT NULL, PRIMARY KEY (seq, n));
CREATE INDEX IF NOT EXISTS insurance_coin ON insurance (coin, ts_ms);
CREATE TABLE IF NOT EXISTS read_side (
    seq BIGINT PRIMARY KEY, fingerprint TEXT NOT NULL, body BYTEA NOT NULL);
"""


def _dialect(text: str) -> str:
    # The shared SQL has no literal '?' or '%': placeholders map one to one.
    return text.replace("?", "%s")


class PostgresHistory(SqlHistory):
    """The history tables in schema `schema` of the database at `dsn`."""

    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn = dsn
        self.schema = schema
        self._db: psycopg.Connection[tuple[Any, ...]] | None = None
        self._sql: dict[str, str] = {}
        super().__init__()

    @property
    def _conn(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._db is None:
            raise RuntimeError("history is closed")
        return self._db

    def _open(self) -> None:
        try:
            db = psycopg.connect(self.dsn, autocommit=True)
        except psycopg.Error as failure:
            raise JournalError(f"cannot connect to PostgreSQL: {failure}") from failure
        try:
            db.execute("SET synchronous_commit = off")
            schema = sql.Identifier(self.schema)
            db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            db.execute(sql.SQL("SET search_path TO {}").format(schema))
            with db.transaction():
                # Two processes creating the tables at once would race on the catalog.
                db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                           (f"perpx-history:{self.schema}",))
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement.encode())
        except BaseException:
            db.close()
            raise
        self._db = db

    def _reconnect(self) -> None:
        db = self._db
        if db is not None and not db.closed and not db.broken:
            return
        if db is not None:
            with contextlib.suppress(psycopg.Error):
                db.close()
            self._db = None
        log.warning("history: reconnecting to PostgreSQL (schema %s)", self.schema)
        self._open()

    def _lost_errors(self) -> tuple[type[Exception], ...]:
        return (psycopg.OperationalError, psycopg.InterfaceError, JournalError, OSError)

    def _text(self, text: str) -> str:
        found = self._sql.get(text)
        if found is None:
            found = self._sql[text] = _dialect(text)
        return found

    def _transaction(self) -> AbstractContextManager[Any]:
        return self._conn.transaction()

    def _execute(self, text: str, values: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cur:
            cur.execute(self._text(text).encode(), tuple(values))
            return cur.fetchall() if cur.description is not None else []

    def _executemany(self, text: str, rows: list[tuple[Any, ...]]) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(self._text(text).encode(), rows)

    def _disconnect(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
