"""Both journal backends for the recovery tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from perpx.store import parse_location
from support.stores import location, opener, snapshot_opener  # noqa: F401


@pytest.fixture(params=["sqlite", "postgres"])
def journal_location(request: pytest.FixtureRequest) -> str | None:
    """None: the default SQLite journal in the data folder; else a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return None
    dsn = request.getfixturevalue("postgres_dsn")
    schema = request.getfixturevalue("pg_schema")
    return f"{dsn}?schema={schema}"


@pytest.fixture
def projector_schema(journal_location: str | None) -> Iterator[None]:
    """Drop projector 0's schema (<journal's>_projector_0) after a PostgreSQL run."""
    yield
    if journal_location is None:
        return
    import psycopg
    from psycopg import sql

    dsn, schema = parse_location(journal_location)[1:]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
            sql.Identifier(f"{schema}_projector_0")))
