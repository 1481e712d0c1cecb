"""The ASGI fast path hands every scope without a path (lifespan) to Starlette untouched.

`RestApp` looks at a scope's path only once it knows the scope is an HTTP request: a
lifespan scope has none, and its startup must reach the Starlette app (which starts the
service's feed and market maker in `perpx serve`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette

from perpx.api.app import create_app
from perpx.api.keys import KeyStore
from perpx.instruments import load_instruments
from perpx.service import ExchangeService
from perpx.store.journal import MemoryJournal


def test_a_lifespan_scope_reaches_starlette_and_starts_up() -> None:
    service = ExchangeService(load_instruments(), MemoryJournal(), clock=lambda: 1_700_000_000_000,
                              maker=False)
    app = create_app(service, KeyStore(None))
    assert isinstance(app.starlette, Starlette)
    sent: list[dict[str, Any]] = []
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                    receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete",
                                         "lifespan.shutdown.complete"]
    service.history.close()
