"""Both journal backends for the recovery tests."""

from __future__ import annotations

import pytest

from support.stores import location, opener, snapshot_opener  # noqa: F401


@pytest.fixture(params=["sqlite", "postgres"])
def journal_location(request: pytest.FixtureRequest) -> str | None:
    """None: the default SQLite journal in the data folder; else a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return None
    dsn = request.getfixturevalue("postgres_dsn")
    schema = request.getfixturevalue("pg_schema")
    return f"{dsn}?schema={schema}"
