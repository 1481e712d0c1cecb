"""A live perpx server on a loopback port, with keys for the real clients."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from perpx.api.app import create_app
from perpx.api.keys import ApiKey, KeyStore
from perpx.api.server import ServerThread
from perpx.instruments import load_instruments
from perpx.service import ExchangeService
from perpx.store.history import History
from perpx.store.journal import MemoryJournal


@dataclass
class Live:
    url: str
    service: ExchangeService
    keys: KeyStore
    alice: ApiKey
    bob: ApiKey
    reader: ApiKey
    limited: ApiKey
    poor: ApiKey
    fuzzer: ApiKey
    http: httpx.Client

    def new_key(self, **options: Any) -> ApiKey:
        options.setdefault("demo_funds", "100000")
        return self.keys.create(**options)

    def state_hash(self) -> str:
        """Hash the engine state but for the sequence number and time a refused command
        still advances (it is journaled like any other)."""
        snapshot = self.service.engine.to_snapshot()
        del snapshot["last_seq"], snapshot["last_ts_ms"]
        return hashlib.sha256(json.dumps(snapshot, sort_keys=True).encode()).hexdigest()


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
    # The feed steps once at start (index, mark, the maker's quotes) and then sleeps, so the
    # engine changes only through the tests' requests and state hashes can be compared.
    service = ExchangeService(load_instruments(), MemoryJournal(),
                              history=History(folder / "history.db"), feed_interval_s=3600)
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


def sign(key: ApiKey, timestamp: str, window: str, payload: str) -> str:
    return hmac.new(key.secret.encode(), (timestamp + key.api_key + window + payload).encode(),
                    hashlib.sha256).hexdigest()


def signed(live: Live, key: ApiKey, method: str, path: str, payload: str = "",
           **overrides: str) -> Any:
    """Send a signed request with the raw query/body `payload`; return the parsed reply."""
    timestamp = str(int(time.time() * 1000))
    headers = {"X-BAPI-API-KEY": key.api_key, "X-BAPI-TIMESTAMP": timestamp,
               "X-BAPI-RECV-WINDOW": "5000",
               "X-BAPI-SIGN": sign(key, timestamp, "5000", payload),
               "Content-Type": "application/json"}
    headers.update(overrides)
    url = live.url + path + (f"?{payload}" if method == "GET" and payload else "")
    reply = httpx.request(method, url, headers=headers,
                          content=payload.encode() if method == "POST" else None)
    assert reply.status_code == 200, reply.text
    return reply.json()
