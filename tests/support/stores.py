"""Journal locations on both backends (SQLite always, PostgreSQL when reachable)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from perpx.store import open_journal, open_snapshots
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
