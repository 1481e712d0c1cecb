"""A writer that publishes (the service with a bus) and helpers to compare history tables."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from perpx.bus import BusPublisher, EventBus, journal_source
from perpx.core.commands import Command
from perpx.instruments import served_instruments
from perpx.service import ExchangeService
from perpx.store.history import History
from perpx.store.history_sql import SqlHistory
from perpx.store.journal import Journal
from perpx.store.loadflow import order_flow
from support.stores import history_rows

SPECS = served_instruments()
START_MS = 1_700_000_000_000
STEP_MS = 20_000  # each command 20 s later: candles close, funding settles every 1,440


def fast_clock() -> Callable[[], int]:
    """A clock 20 s ahead at each reading, so a few thousand commands span funding times."""
    ticks = itertools.count()
    return lambda: START_MS + STEP_MS * next(ticks)


def flow(count: int, seed: int = 11) -> list[Command]:
    """A trading flow: deposits, crossing limit orders, cancels, market orders, prices."""
    return list(order_flow(count, seed))


def writer(journal: Journal, history: History, bus: EventBus) -> ExchangeService:
    """The whole service (in-process history) publishing every durable batch on `bus`."""
    return ExchangeService(SPECS, journal, history=history, maker=False, clock=fast_clock(),
                           bus=BusPublisher(bus, journal_source(SPECS, journal)))


async def submit(service: ExchangeService, commands: list[Command], chunk: int = 40) -> None:
    """Submit `commands` in concurrent chunks (group commits of several commands)."""
    for start in range(0, len(commands), chunk):
        await asyncio.gather(*(service.submit(c) for c in commands[start:start + chunk]))


def ordered_ids(history: SqlHistory) -> dict[str, list[Any]]:
    """The natural keys of the executions and the ledger in their surrogate ids' order.

    Pages are newest-first by that id, so its order must be the same; the ids themselves
    may differ (PostgreSQL spends sequence values in transactions a crash rolled back).
    """
    def dump() -> dict[str, list[Any]]:
        return {"executions": [r[0] for r in history._execute(
                    "SELECT exec_id FROM executions ORDER BY id")],
                "ledger": [r[0] for r in history._execute(
                    "SELECT entry_id FROM ledger ORDER BY id")]}

    history.flush().result()
    return history._executor.submit(dump).result()


def same_tables(ours: SqlHistory, theirs: SqlHistory) -> None:
    """Assert both hold the same rows (every table) in the same order (paged tables)."""
    mine, reference = history_rows(ours), history_rows(theirs)
    for table in reference:
        assert mine[table] == reference[table], f"table {table} differs"
    assert ordered_ids(ours) == ordered_ids(theirs)
    assert sum(len(rows) for rows in reference.values()) > 0
