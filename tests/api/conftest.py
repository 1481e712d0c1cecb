"""A live perpx server on a loopback port, with keys for the real clients."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from apisupport import Live
from perpx.api.app import create_app
from perpx.api.keys import KeyStore
from perpx.api.server import ServerThread
from perpx.instruments import bundled_instruments
from perpx.service import ExchangeService
from perpx.store.history_sqlite import SqliteHistory
from perpx.store.journal import MemoryJournal


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("perpx")
    keys = KeyStore(folder)
    alice = keys.create(demo_funds="100000", note="alice")
    bob = keys.create(demo_funds="100000", note="bob")
    reader = keys.create(demo_funds="1000", read_only=True, note="reader")
    limited = keys.create(demo_funds="1000", rate_limit=3, note="limited")
    poor = keys.create(demo_funds="0", note="poor")
    fuzzer = keys.create(demo_funds="100000", rate_limit=100_000, note="fuzzer")
    # Every bundled instrument, as `perpx serve` lists them (the inverse BTCUSD and ETHUSD too).
    # The feed steps once at start (index, mark, the maker's quotes) and then sleeps, so the
    # engine changes only through the tests' requests and state hashes can be compared.
    service = ExchangeService(bundled_instruments(), MemoryJournal(),
                              history=SqliteHistory(folder / "history.db"), feed_interval_s=3600)
    server = ServerThread(create_app(service, keys, manage_service=True)).start()
    deadline = time.monotonic() + 10
    while service.engine.books["BTCUSDT"].best_ask() is None:  # the maker quotes
        assert time.monotonic() < deadline, "the market maker never quoted"
        time.sleep(0.05)
    http = httpx.Client()
    yield Live(server.url, service, keys, alice, bob, reader, limited, poor, fuzzer, http)
    http.close()
    server.stop()
    keys.close()
