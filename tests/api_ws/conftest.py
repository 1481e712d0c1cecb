from __future__ import annotations

from collections.abc import Iterator

import pytest

from api_ws.live import LiveExchange


@pytest.fixture
def live() -> Iterator[LiveExchange]:
    exchange = LiveExchange().start()
    for account in (1, 2, 3):
        exchange.deposit(account)
    exchange.mark("30000")
    try:
        yield exchange
    finally:
        exchange.stop()
