"""Latency of a signed 10-item `create-batch` and `cancel-batch` (issue #15). Timing: alternate A/B.

The layout of `bench_cancel_polls.py` (its `served`: the writer on a SQLite journal with
fsync'd group commits (`/tmp` here is on the disk), and one `GatewayService` in front
polling every `POLL_S` as served), the requests sent straight to the REST dispatcher (no
socket, no HTTP), one client, serially, through the writer's own API (`writer`) and through
the gateway (`gateway`). Each of ROUNDS rounds: a create-batch of ITEMS resting orders, then
a cancel-batch of them (by id and by link id alternately). Reported per request kind: the
median and 90th percentile in ms, and the writer's group commits (journal batches) per
request. JSON last. Run: `PYTHONPATH=src python benchmarks/bench_batch_latency.py [ROUNDS]
[ITEMS]` (default 200 and 10); compare two trees by running each in turn, alternately.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import Any

from bench_cancel_polls import Served, _call, order, served
from perpx.roles.gateway import POLL_S


def _figures(samples: list[float], commits: int) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered) * 1000, 3),
            "p90_ms": round(ordered[int(len(ordered) * 0.9)] * 1000, 3),
            "commits_per_request": round(commits / len(samples), 2)}


async def _through(serving: Served, through: str, rounds: int, items: int
                   ) -> dict[str, dict[str, float]]:
    """Time `rounds` create-batch and cancel-batch requests through `through`'s API."""
    app, alice, writer = serving.app(through), serving.alice, serving.service.sequencer
    await _call(app, alice, "GET", "/v5/account/wallet-balance", "accountType=UNIFIED")
    times: dict[str, list[float]] = {"create-batch": [], "cancel-batch": []}
    commits = dict.fromkeys(times, 0)
    btc = {"category": "linear", "symbol": "BTCUSDT"}

    async def timed(kind: str, body: dict[str, Any]) -> Any:
        batches, start = writer.batches, time.perf_counter()
        answer = await _call(app, alice, "POST", f"/v5/order/{kind}", json.dumps(body))
        times[kind].append(time.perf_counter() - start)
        commits[kind] += writer.batches - batches
        return answer

    for _ in range(rounds):
        placed = await timed("create-batch", {
            "category": "linear", "request": [order(n) for n in range(items)]})
        ids = [entry["orderId"] for entry in placed["list"]]
        gone = await timed("cancel-batch", {"category": "linear", "request": [
            dict(btc, **({"orderId": i} if n % 2 else {"orderLinkId": f"link-{n}"}))
            for n, i in enumerate(ids)]})
        assert [entry["orderId"] for entry in gone["list"]] == ids, gone
    return {kind: _figures(samples, commits[kind]) for kind, samples in times.items()}


async def measure(rounds: int = 200, items: int = 10) -> dict[str, Any]:
    """Time the batches through the writer's own API, then through the gateway."""
    result: dict[str, Any] = {"bench": "batch_latency", "rounds": rounds, "items": items}
    async with served(poll_s=POLL_S) as serving:
        for through in ("writer", "gateway"):
            result[through] = await _through(serving, through, rounds, items)
    return result


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(asyncio.run(measure(*arguments))))
