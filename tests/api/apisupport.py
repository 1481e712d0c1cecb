"""Helpers for the live-server API tests: the `Live` handle and request signing."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from perpx.api.keys import ApiKey, KeyStore
from perpx.service import ExchangeService


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
