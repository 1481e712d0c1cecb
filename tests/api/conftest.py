"""A live perpx server on a loopback port, with keys for the real clients.

`gateway_live` is the same behind an API gateway (`perpx.roles.gateway`): the writer's
service takes commands on a Unix socket, the gateway serves the API from its follower of
the writer's SQLite journal (tests that must hold for both ask for it too).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from apisupport import Live
from perpx.api.app import create_app
from perpx.api.keys import ApiKey, KeyStore
from perpx.api.server import LoopServerThread, ServerThread
from perpx.instruments import served_instruments
from perpx.roles.gateway import GatewayService
from perpx.service import ExchangeService, open_service_journal
from perpx.store import open_history
from perpx.store.history_sqlite import SqliteHistory
from perpx.store.journal import MemoryJournal
from perpx.transport import CommandEndpoint, UnixWriterClient


def _keys(keys: KeyStore) -> list[ApiKey]:
    """alice, bob, reader, limited, poor, fuzzer."""
    return [keys.create(demo_funds="100000", note="alice"),
            keys.create(demo_funds="100000", note="bob"),
            keys.create(demo_funds="1000", read_only=True, note="reader"),
            keys.create(demo_funds="1000", rate_limit=3, note="limited"),
            keys.create(demo_funds="0", note="poor"),
            keys.create(demo_funds="100000", rate_limit=100_000, note="fuzzer")]


def _quoting(service: ExchangeService) -> None:
    deadline = time.monotonic() + 10
    while service.engine.books["BTCUSDT"].best_ask() is None:  # the maker quotes
        assert time.monotonic() < deadline, "the market maker never quoted"
        time.sleep(0.05)


@pytest.fixture(scope="session")
def gateway_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("perpx-gateway")
    keys = KeyStore(folder)
    made = _keys(keys)
    location = str(folder / "journal.db")
    service = ExchangeService(served_instruments(), open_service_journal(folder),
                              history=open_history(location), feed_interval_s=3600)
    # The writer's loop (its own API is not used): the service and the command socket.
    writer = LoopServerThread(create_app(service, keys)).start()
    writer.run(service.start(), 30)
    endpoint = CommandEndpoint(service.submit, service.stopped.is_set,
                               durable_seq=lambda: service.sequencer.durable_seq,
                               fund=service.fund_for_gateway,
                               submit_entries=service.submit_entries)
    writer.run(endpoint.start_unix(folder / "writer.sock"), 10)
    gateway = GatewayService(served_instruments(), location,
                             UnixWriterClient(folder / "writer.sock"), open_history(location))
    gateway_keys = KeyStore(folder)  # the gateway's own connection to the key table
    server = ServerThread(create_app(gateway, gateway_keys, manage_service=True)).start()
    _quoting(service)
    http = httpx.Client()
    yield Live(server.url, service, keys, *made, http)
    http.close()
    server.stop()
    writer.run(endpoint.close(), 30)
    writer.run(service.close(), 30)
    writer.stop()
    gateway_keys.close()
    keys.close()


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("perpx")
    keys = KeyStore(folder)
    alice, bob, reader, limited, poor, fuzzer = _keys(keys)
    # What `perpx serve` lists: the linear and the inverse perpetuals (BTCUSD, ETHUSD).
    # The feed steps once at start (index, mark, the maker's quotes) and then sleeps, so the
    # engine changes only through the tests' requests and state hashes can be compared.
    service = ExchangeService(served_instruments(), MemoryJournal(),
                              history=SqliteHistory(folder / "history.db"), feed_interval_s=3600)
    server = ServerThread(create_app(service, keys, manage_service=True)).start()
    _quoting(service)
    http = httpx.Client()
    yield Live(server.url, service, keys, alice, bob, reader, limited, poor, fuzzer, http)
    http.close()
    server.stop()
    keys.close()
