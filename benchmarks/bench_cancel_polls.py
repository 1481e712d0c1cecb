"""A gateway's journal polls per signed `POST /v5/order/cancel` (issue #15). Deterministic.

In one process: the writer (`ExchangeService` on a SQLite journal, its command socket) and
one `GatewayService` in front of it whose follower polls the journal only when asked
(`poll_s` of an hour), so every poll counted was started by a request: the catch-up wait
(`Venue.caught_up`) or the wait for the command's own seq to show (`GatewayService.submit`).
COUNT orders are placed (each with a link id), then cancelled one after the other, by id
and by link id alternately; the gateway's polls started during the cancels are counted.
One client, serial: with many in flight the polls are shared and the count per cancel is
lower. Counts only, no timing. JSON last.

Run: `PYTHONPATH=src python benchmarks/bench_cancel_polls.py [COUNT]` (default 200).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perpx.api.app import RestApp, create_app
from perpx.api.keys import ApiKey, KeyStore
from perpx.instruments import load_instruments
from perpx.roles.gateway import GatewayService
from perpx.service import ExchangeService
from perpx.store import open_history
from perpx.store.sqlite import SqliteJournal
from perpx.transport import CommandEndpoint, UnixWriterClient

NOW = 1_700_000_000_000


async def _call(app: RestApp, key: ApiKey, method: str, path: str, payload: str) -> Any:
    """Send one signed request straight to the dispatcher; return its result (a success)."""
    sign = key.sign(f"{NOW}{key.api_key}5000{payload}")
    headers = {"x-bapi-api-key": key.api_key, "x-bapi-timestamp": str(NOW),
               "x-bapi-recv-window": "5000", "x-bapi-sign": sign}
    status, body, _ = await app.dispatcher(method, path, payload.encode(), headers)
    reply = json.loads(body)
    if status != 200 or reply["retCode"] != 0:
        raise RuntimeError(f"{path}: {body!r}")
    return reply["result"]


@dataclass
class Served:
    """The writer, the gateway in front of it, their keys and one funded key."""

    service: ExchangeService
    gateway: GatewayService
    keys: KeyStore
    alice: ApiKey

    def app(self, through: str) -> RestApp:
        """The REST app over the writer itself (`writer`) or over the gateway (`gateway`)."""
        app = create_app(self.service if through == "writer" else self.gateway, self.keys)
        assert isinstance(app, RestApp)
        return app


@contextlib.asynccontextmanager
async def served(poll_s: float = 3600.0) -> AsyncIterator[Served]:
    """The writer on a SQLite journal in a temporary folder, a gateway in front, one funded key.

    The gateway's follower polls the journal every `poll_s` unasked (an hour: only when a
    request asks). Shared with `bench_batch_polls.py` and `bench_batch_latency.py`.
    """
    with tempfile.TemporaryDirectory(prefix="perpx-bench-") as folder:
        location = str(Path(folder) / "journal.db")
        keys = KeyStore(None)
        alice = keys.create(demo_funds="100000", rate_limit=1_000_000)
        service = ExchangeService(load_instruments(), SqliteJournal(location),
                                  history=open_history(location), clock=lambda: NOW,
                                  maker=False, feed_interval_s=3600)
        # Groups only where the tree has them (`submit_entries`, before it `submit_all`), so
        # that the bench measures an older one.
        grouped = ({"submit_entries": service.submit_entries}
                   if hasattr(service, "submit_entries")
                   else {"submit_all": service.submit_all} if hasattr(service, "submit_all")
                   else {})
        endpoint = CommandEndpoint(service.submit, service.stopped.is_set,
                                   durable_seq=lambda: service.sequencer.durable_seq,
                                   fund=service.fund_for_gateway, **grouped)
        await endpoint.start_unix(Path(folder) / "writer.sock")
        gateway = GatewayService(load_instruments(), location,
                                 UnixWriterClient(Path(folder) / "writer.sock"),
                                 open_history(location), clock=lambda: NOW, poll_s=poll_s)
        await gateway.start()
        try:
            await service.step()
            yield Served(service, gateway, keys, alice)
        finally:
            await gateway.close()
            await endpoint.close()
            await service.close()


def order(n: int, price: str = "60000") -> dict[str, Any]:
    """A resting BTCUSDT buy with the link id `link-{n}`."""
    return {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "qty": "0.001",
            "orderType": "Limit", "price": price, "timeInForce": "GTC",
            "orderLinkId": f"link-{n}"}


async def measure(count: int) -> dict[str, Any]:
    """Place `count` orders through the gateway, cancel them; return the polls counted."""
    async with served() as serving:
        app, gateway, alice = serving.app("gateway"), serving.gateway, serving.alice
        await _call(app, alice, "GET", "/v5/account/wallet-balance", "accountType=UNIFIED")
        ids = []
        for n in range(count):
            placed = await _call(app, alice, "POST", "/v5/order/create", json.dumps(order(n)))
            ids.append(placed["orderId"])
        polls = gateway._polls_started
        for n, order_id in enumerate(ids):
            name = {"orderId": order_id} if n % 2 else {"orderLinkId": f"link-{n}"}
            await _call(app, alice, "POST", "/v5/order/cancel", json.dumps(
                {"category": "linear", "symbol": "BTCUSDT", **name}))
        polls = gateway._polls_started - polls
    return {"bench": "cancel_polls", "cancels": count, "gateway_polls": polls,
            "polls_per_cancel": round(polls / count, 3)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 200))))
