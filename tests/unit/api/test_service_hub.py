"""The API's stream hub over a service: it shares the service's read side and listens to it."""

from __future__ import annotations

import asyncio

from perpx.api.app import service_hub
from perpx.core.commands import Deposit
from perpx.instruments import load_instruments
from perpx.service import ExchangeService
from perpx.store.journal import MemoryJournal


def test_the_hub_publishes_from_the_services_read_side() -> None:
    async def run() -> None:
        service = ExchangeService(load_instruments(), MemoryJournal(), maker=False)
        hub = service_hub(service)
        # One state for REST and the streams: the hub folds nothing of its own.
        assert hub.projector is service.projector and hub.private.projector is service.projector
        assert hub.tickers is service.tickers and hub.klines is service.klines
        assert hub.books is service.books and hub.private.adl is service.adl
        heard: list[int] = []
        service.listen(lambda command, events, projection, books: heard.append(command.seq))
        await service.submit(Deposit(0, 0, 5, "USDT", 1))
        await service.sequencer.close()
        # Told once the read side has folded the command, after the hub (registered first).
        assert heard == [service.read_seq] and hub.seq == service.read_seq == 1

    asyncio.run(run())


def test_a_hub_built_after_a_restart_shows_the_restored_books() -> None:
    journal = MemoryJournal()
    specs = load_instruments()

    async def first() -> None:
        service = ExchangeService(specs, journal, maker=False)
        service_hub(service)
        await service.submit(Deposit(0, 0, 5, "USDT", 1))
        await service.sequencer.close()

    asyncio.run(first())
    again = ExchangeService(specs, journal, maker=False)
    hub = service_hub(again)
    assert hub.seq == again.books.seq == 1
