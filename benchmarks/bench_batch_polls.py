"""A gateway's journal polls per signed batch and cancel-all request (issue #15). Deterministic.

The layout of `bench_cancel_polls.py` (its `served`: the writer on a SQLite journal and one
`GatewayService` in front whose follower polls only when a request asks), so every poll
counted was started by a request: the catch-up wait (`Venue.caught_up`) or a command's wait
for its own seq to show (`GatewayService.submit`, one per command, the items of a batch
sent one after the other). ROUNDS times each, serially, one client, counting the polls
started during each kind of request alone:

- `create-batch`, `amend-batch`, `cancel-batch` of ITEMS orders (amend and cancel by id
  and by link id alternately);
- `cancel-all` by symbol with ITEMS orders open, with none, and by settle coin (USDT) with
  ITEMS orders open on BTCUSDT; by base coin (BTC) with ITEMS orders open on BTCUSDT; by
  settle coin with ITEMS orders open on BTCUSDT and one on ETHUSDT (two symbols of the
  three it lists); by settle coin with none open.

Also the writer's group commits (journal batches) per request. Counts only, no timing.
JSON last. Run: `PYTHONPATH=src python benchmarks/bench_batch_polls.py [ROUNDS] [ITEMS]`
(default 20 and 10).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from bench_cancel_polls import _call, order, served


async def measure(rounds: int = 20, items: int = 10) -> dict[str, Any]:
    """Run each kind of request `rounds` times through the gateway; return polls per request."""
    polls: dict[str, int] = {}
    commits: dict[str, int] = {}
    async with served() as serving:
        app, gateway, alice = serving.app("gateway"), serving.gateway, serving.alice
        writer = serving.service.sequencer
        await _call(app, alice, "GET", "/v5/account/wallet-balance", "accountType=UNIFIED")
        btc = {"category": "linear", "symbol": "BTCUSDT"}

        async def count(kind: str, path: str, body: dict[str, Any]) -> Any:
            started, batches = gateway._polls_started, writer.batches
            result = await _call(app, alice, "POST", path, json.dumps(body))
            polls[kind] = polls.get(kind, 0) + gateway._polls_started - started
            commits[kind] = commits.get(kind, 0) + writer.batches - batches
            return result

        def named(n: int, order_id: str) -> dict[str, str]:
            return {"orderId": order_id} if n % 2 else {"orderLinkId": f"link-{n}"}

        eth_order = dict(order(items), symbol="ETHUSDT", qty="0.01", price="1000")

        async def place_all() -> None:
            for n in range(items):
                await _call(app, alice, "POST", "/v5/order/create", json.dumps(order(n)))

        for _ in range(rounds):
            placed = await count("create-batch", "/v5/order/create-batch", {
                "category": "linear", "request": [order(n) for n in range(items)]})
            ids = [entry["orderId"] for entry in placed["list"]]
            assert all(ids), placed
            await count("amend-batch", "/v5/order/amend-batch", {
                "category": "linear", "request": [dict(btc, price="59000", **named(n, i))
                                                  for n, i in enumerate(ids)]})
            gone = await count("cancel-batch", "/v5/order/cancel-batch", {
                "category": "linear", "request": [dict(btc, **named(n, i))
                                                  for n, i in enumerate(ids)]})
            assert [entry["orderId"] for entry in gone["list"]] == ids, gone
            await place_all()
            done = await count("cancel-all-symbol", "/v5/order/cancel-all", btc)
            assert len(done["list"]) == items, done
            done = await count("cancel-all-nothing", "/v5/order/cancel-all", btc)
            assert done["list"] == [], done
            await place_all()
            done = await count("cancel-all-settle-coin", "/v5/order/cancel-all",
                               {"category": "linear", "settleCoin": "USDT"})
            assert len(done["list"]) == items, done
            await place_all()
            done = await count("cancel-all-base-coin", "/v5/order/cancel-all",
                               {"category": "linear", "baseCoin": "BTC"})
            assert len(done["list"]) == items, done
            await place_all()
            await _call(app, alice, "POST", "/v5/order/create", json.dumps(eth_order))
            done = await count("cancel-all-settle-coin-2-symbols", "/v5/order/cancel-all",
                               {"category": "linear", "settleCoin": "USDT"})
            assert len(done["list"]) == items + 1, done
            done = await count("cancel-all-coin-nothing", "/v5/order/cancel-all",
                               {"category": "linear", "settleCoin": "USDT"})
            assert done["list"] == [], done
    return {"bench": "batch_polls", "rounds": rounds, "items": items,
            "polls_per_request": {k: round(v / rounds, 3) for k, v in polls.items()},
            "writer_commits_per_request": {k: round(v / rounds, 3)
                                           for k, v in commits.items()}}


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(asyncio.run(measure(*arguments))))
