from __future__ import annotations

import asyncio

import pytest

from perpx.core.commands import Deposit
from perpx.core.errors import InvariantViolation
from perpx.instruments import load_instruments
from perpx.service import ExchangeService, ServiceStopped
from perpx.store.journal import MemoryJournal


def test_feed_steps_quote_the_book_and_a_restart_replays_the_journal() -> None:
    journal = MemoryJournal()

    async def first() -> str:
        service = ExchangeService(load_instruments(), journal, feed_interval_s=3600)
        await service.start()
        for _ in range(3):
            await service.step()
        book = service.engine.books["BTCUSDT"]
        assert book.best_bid() is not None and book.best_ask() is not None
        assert service.engine.mark_price["ETHUSDT"] > 0
        await service.ensure_funded(2001, "500")
        await service.ensure_funded(2001, "500")  # once only
        assert service.engine.clearing.accounts[2001].balance("USDT") == 500 * 10**8
        state = service.engine.state_hash()
        await service.close()
        return state

    state = asyncio.run(first())
    again = ExchangeService(load_instruments(), journal, maker=False)
    assert again.engine.state_hash() == state
    assert again.engine.clearing.accounts[2001].balance("USDT") == 500 * 10**8


def test_a_broken_invariant_stops_the_service() -> None:
    async def run() -> None:
        service = ExchangeService(load_instruments(), MemoryJournal(), maker=False)

        def broken(command: object, events: object) -> None:
            raise InvariantViolation("boom")

        service.engine._handlers[Deposit] = broken  # a core bug, simulated
        with pytest.raises(ServiceStopped):
            await service.submit(Deposit(0, 0, 5, "USDT", 1))
        assert service.stopped.is_set() and isinstance(service.fatal, InvariantViolation)
        with pytest.raises(ServiceStopped):
            await service.submit(Deposit(0, 0, 5, "USDT", 1))

    asyncio.run(run())
