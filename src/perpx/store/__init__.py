"""Stores around the core: the command journal, snapshots and the history tables.

`open_journal(url)`, `open_snapshots(url)` and `open_history(url)` pick the backend from one
location string (this module stands above the backends, which never import it):

- a file path, or ``sqlite:///path`` (``sqlite:///:memory:`` is refused: not durable);
- ``postgresql://...`` or ``postgres://...``; an optional ``schema=NAME`` query parameter
  picks the schema (default ``perpx``), the rest is handed to libpq as is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:  # the backends import their drivers only when opened
    from perpx.store.history import History
    from perpx.store.journal import Journal
    from perpx.store.snapshots import SnapshotStore

_PG_SCHEMES = ("postgresql", "postgres")


def parse_location(url: str) -> tuple[str, str, str]:
    """Return ``(kind, target, schema)``: kind "sqlite" (target a path) or "postgres" (a DSN)."""
    parts = urlsplit(url)
    if parts.scheme in _PG_SCHEMES:
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = next((v for k, v in query if k == "schema"), "perpx")
        rest = urlencode([(k, v) for k, v in query if k != "schema"])
        return "postgres", urlunsplit(parts._replace(query=rest)), schema
    if parts.scheme == "sqlite":
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else ""
        if url.startswith("sqlite:////"):
            path = "/" + url[len("sqlite:////"):]
        if not path:
            raise ValueError(f"bad SQLite location {url!r}: use sqlite:///relative/path "
                             "or sqlite:////absolute/path")
    elif parts.scheme and len(parts.scheme) > 1:
        raise ValueError(f"unknown journal location {url!r}: use a file path, sqlite:///PATH "
                         "or postgresql://...")
    else:
        path = url
    if path == ":memory:" or not path:
        raise ValueError("an in-memory SQLite journal is not durable; give a file path")
    return "sqlite", path, ""


def open_journal(url: str, *, readonly: bool = False,
                 lock_wait_s: float | None = None) -> Journal:
    """Open the journal at `url` (see the module docstring for the forms).

    A writer (the default) is fenced against any other writer of the same journal: it waits
    up to `lock_wait_s` (default 15 s) for the writer lock, then raises `JournalBusy`, and
    takes a new leader epoch that every one of its group commits checks. A `readonly`
    journal (replay, audit, a standby's follower) refuses appends, waits for no one, creates
    nothing (`JournalMissing` where there is no journal) and opens its database read-only.
    """
    kind, target, schema = parse_location(url)
    if kind == "postgres":
        from perpx.store.postgres import WRITER_LOCK_WAIT_S, PostgresJournal

        return PostgresJournal(target, schema, writer=not readonly,
                               lock_wait_s=WRITER_LOCK_WAIT_S if lock_wait_s is None
                               else lock_wait_s)
    from perpx.store.sqlite import WRITER_LOCK_WAIT_S as SQLITE_WAIT_S
    from perpx.store.sqlite import SqliteJournal

    return SqliteJournal(target, readonly=readonly,
                         lock_wait_s=SQLITE_WAIT_S if lock_wait_s is None else lock_wait_s)


def open_snapshots(url: str, chunk_bytes: int | None = None, *,
                   readonly: bool = False) -> SnapshotStore:
    """Open the snapshot store that lives beside the journal at `url`.

    `readonly` opens it as `open_journal` does (`perpx replay --verify-snapshots`).
    """
    from perpx.store.snapshots import (
        DEFAULT_CHUNK_BYTES,
        PostgresSnapshotStore,
        SqliteSnapshotStore,
    )

    kind, target, schema = parse_location(url)
    size = chunk_bytes or DEFAULT_CHUNK_BYTES
    if kind == "postgres":
        return PostgresSnapshotStore(target, schema, size, readonly=readonly)
    return SqliteSnapshotStore(target, size, readonly=readonly)


def open_history(location: str, *, beside_journal: bool = True) -> History:
    """Open history tables: by default in the database of the journal at `location`.

    With `beside_journal=False`, `location` names the tables' own place: a SQLite file (not
    a journal's, whose history is ``history.db`` beside it), or a PostgreSQL schema (a
    projector's own, issue #15).
    """
    kind, target, schema = parse_location(location)
    if kind == "postgres":
        from perpx.store.history_postgres import PostgresHistory

        return PostgresHistory(target, schema)
    from perpx.store.history import history_path
    from perpx.store.history_sqlite import SqliteHistory

    return SqliteHistory(history_path(target) if beside_journal else target)
