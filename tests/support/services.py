"""External services for tests (PostgreSQL, NATS): skip with a reason when absent, fail under CI.

A test that needs PostgreSQL asks for `postgres_dsn` (the DSN) or `pg_schema` (a schema name
fresh to this test, dropped afterwards: only schemas this run created are ever dropped).
With PERPX_REQUIRE_SERVICES=1 (CI sets it) an unreachable service fails the test instead.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_DSN = os.environ.get("PERPX_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def services_required() -> bool:
    """True when a missing service must fail the test rather than skip it."""
    return os.environ.get("PERPX_REQUIRE_SERVICES") == "1"


def unavailable(what: str, why: object) -> None:
    """Skip (or, under PERPX_REQUIRE_SERVICES=1, fail) because `what` is unreachable."""
    message = f"{what} unreachable ({why}); set PERPX_TEST_POSTGRES or start it"
    if services_required():
        pytest.fail(f"{message} [PERPX_REQUIRE_SERVICES=1]")
    pytest.skip(message)


def postgres_or_skip() -> str:
    """Return the test DSN if PostgreSQL answers; otherwise skip (or fail under CI)."""
    import psycopg

    try:
        with psycopg.connect(POSTGRES_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as failure:
        unavailable("PostgreSQL at " + POSTGRES_DSN, failure)
    return POSTGRES_DSN


@pytest.fixture
def postgres_dsn() -> str:
    """The DSN of a reachable PostgreSQL test database."""
    return postgres_or_skip()


@pytest.fixture
def pg_schema(postgres_dsn: str) -> Iterator[str]:
    """A schema created fresh for this test and dropped after it."""
    import psycopg
    from psycopg import sql

    name = f"perpx_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


# -- NATS JetStream (the event bus) ---------------------------------------------------------

NATS_URL = os.environ.get("PERPX_TEST_NATS", "nats://127.0.0.1:4222")


def nats_or_skip() -> str:
    """Return the test NATS URL if JetStream answers; otherwise skip (or fail under CI)."""
    import asyncio

    import nats

    async def probe() -> None:
        nc = await nats.connect(NATS_URL, connect_timeout=3, max_reconnect_attempts=0,
                                allow_reconnect=False)
        try:
            await nc.jetstream().account_info()
        finally:
            await nc.close()

    try:
        # Bounded: with no server nats-py retries its one server without end.
        asyncio.run(asyncio.wait_for(probe(), 5))
    except Exception as failure:  # nats-py raises several kinds for an absent server
        message = f"NATS JetStream at {NATS_URL} unreachable ({failure!r}); set PERPX_TEST_NATS"
        if services_required():
            pytest.fail(f"{message} [PERPX_REQUIRE_SERVICES=1]")
        pytest.skip(message)
    return NATS_URL


@pytest.fixture
def nats_url() -> str:
    """The URL of a reachable NATS server with JetStream."""
    return nats_or_skip()


@pytest.fixture
def stream_name(nats_url: str) -> Iterator[str]:
    """A JetStream stream name fresh to this test; the stream is deleted after it."""
    import asyncio

    import nats
    from nats.js.errors import NotFoundError

    name = f"PERPX_TEST_{uuid.uuid4().hex[:12].upper()}"
    yield name

    async def delete() -> None:
        nc = await nats.connect(nats_url, connect_timeout=3)
        try:
            with contextlib.suppress(NotFoundError):
                await nc.jetstream().delete_stream(name)
        finally:
            await nc.close()

    asyncio.run(delete())
