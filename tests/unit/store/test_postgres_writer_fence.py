"""One writer per PostgreSQL journal: a second is refused, readers never wait."""

from __future__ import annotations

import pytest

from perpx.core.commands import Deposit
from perpx.store.journal import JournalError
from perpx.store.postgres import PostgresJournal, take_writer_lock
from support.services import pg_schema, postgres_dsn  # noqa: F401


def test_a_second_writer_is_refused_until_the_first_is_gone(postgres_dsn: str,  # noqa: F811
                                                            pg_schema: str) -> None:  # noqa: F811
    first = PostgresJournal(postgres_dsn, pg_schema)
    first.append([Deposit(1, 1, 1, "USDT", 5)])
    second = PostgresJournal(postgres_dsn, pg_schema, writer=False)
    with pytest.raises(JournalError, match="in use by another writer"):
        take_writer_lock(second._conn, pg_schema, wait_s=0.2)
    assert [c.seq for c in second.read()] == [1]  # a reader is not fenced
    with pytest.raises(JournalError, match="read-only"):
        second.append([Deposit(2, 2, 1, "USDT", 5)])
    first.close()
    take_writer_lock(second._conn, pg_schema, wait_s=5)  # released with the first's session
    second.close()
    again = PostgresJournal(postgres_dsn, pg_schema)
    assert again.last_seq() == 1
    again.close()
