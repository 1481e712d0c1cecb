"""Journal locations on both backends (SQLite always, PostgreSQL when reachable)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from perpx.store import open_journal, open_snapshots, parse_location
from perpx.store.history import history_path
from perpx.store.history_sql import SqlHistory
from perpx.store.journal import Journal
from perpx.store.snapshots import SnapshotStore


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh journal location on each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "journal.db")
    dsn = request.getfixturevalue("postgres_dsn")
    schema = request.getfixturevalue("pg_schema")
    return f"{dsn}?schema={schema}"


@pytest.fixture
def opener(location: str) -> Callable[[], Journal]:
    """Open (or reopen) the journal at `location`."""
    return lambda: open_journal(location)


@pytest.fixture
def snapshot_opener(location: str) -> Callable[..., SnapshotStore]:
    """Open (or reopen) the snapshot store beside the journal."""
    return lambda chunk_bytes=None: open_snapshots(location, chunk_bytes)


def history_sql(location: str, statement: str, values: tuple[object, ...] = ()) -> list[Any]:
    """Run one statement (``?`` placeholders) on the history tables of the journal at
    `location` (SQLite: ``history.db`` beside it; PostgreSQL: the journal's schema)."""
    kind, target, schema = parse_location(location)
    if kind == "sqlite":
        with sqlite3.connect(history_path(target)) as db:
            return db.execute(statement, values).fetchall()
    import psycopg
    from psycopg import sql

    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        cur = conn.execute(statement.replace("?", "%s").encode(), values)
        return cur.fetchall() if cur.description is not None else []


# Every history table with its natural key first (surrogate ids and checkpoints left out).
HISTORY_ROWS = {
    "orders": "order_id, account_id, symbol, status, order_link_id, created_ms, record",
    "executions": "exec_id, account_id, symbol, order_id, exec_type, exec_ms, record",
    "closed_pnl": "order_id, account_id, symbol, updated_ms, record",
    "ledger": "entry_id, account_id, coin, kind, ts_ms, record",
    "klines": 'symbol, kind, "interval", start_ms, open, high, low, close, volume, turnover, '
              "updated_ms",
    "funding": "symbol, ts_ms, rate, mark_price, seq",
}


def history_rows(history: SqlHistory) -> dict[str, list[tuple[Any, ...]]]:
    """Return every row of every history table, sorted, with bytes as bytes."""
    def dump() -> dict[str, list[tuple[Any, ...]]]:
        out: dict[str, list[tuple[Any, ...]]] = {}
        for table, columns in HISTORY_ROWS.items():
            rows = history._execute(f"SELECT {columns} FROM {table}")
            out[table] = sorted(tuple(bytes(v) if isinstance(v, memoryview) else v
                                      for v in row) for row in rows)
        return out

    history.flush().result()
    return history._executor.submit(dump).result()
