"""The borrow history table (next-mechanics §4.6 `/v5/account/borrow-history`).

Rows are kept by entry id (written twice, kept once), survive a reopen, page newest first
with the store's cursor, filter by coin and time, and go with `reset`.
"""

from __future__ import annotations

import asyncio

from perpx.store import open_history
from perpx.store.history import decode_cursor
from perpx.store.records import BorrowRecord

HOUR_MS = 3_600_000
T0 = 1_700_000_300_000  # an hh:05


def row(hour: int, coin: str = "USDT", account: int = 7) -> BorrowRecord:
    return BorrowRecord(f"{hour + 1}-1", account, coin, 10**9, 0, 10**9, 0,
                        14_621_596_000_000, 14_621, T0 + hour * HOUR_MS, hour + 1)


def test_borrow_rows_page_filter_persist_and_reset(location: str) -> None:
    """On both backends (PostgreSQL when one is reachable)."""
    history = open_history(location)
    for hour in range(5):
        history.borrow(row(hour))
    history.borrow(row(0))  # projected again after a restart: the same row
    history.borrow(row(5, "BTC"))
    history.borrow(row(6, account=8))
    history.projected(7)
    history.flush().result()
    history.close()

    history = open_history(location)
    page = asyncio.run(history.run(lambda: history.borrows(7, limit=4)))
    assert [r.ts_ms for r in page.records] == [T0 + h * HOUR_MS for h in (5, 4, 3, 2)]
    assert decode_cursor(page.next_cursor)
    rest = asyncio.run(history.run(lambda: history.borrows(7, limit=4,
                                                            cursor=page.next_cursor)))
    assert [r.ts_ms for r in rest.records] == [T0 + HOUR_MS, T0] and rest.next_cursor == ""
    usdt = asyncio.run(history.run(lambda: history.borrows(
        7, coin="USDT", start_ms=T0 + HOUR_MS, end_ms=T0 + 3 * HOUR_MS)))
    assert [r.ts_ms for r in usdt.records] == [T0 + h * HOUR_MS for h in (3, 2, 1)]
    assert usdt.records[0] == row(3)
    history.reset()
    assert asyncio.run(history.run(lambda: history.borrows(7))).records == []
    history.close()
