"""GET /perpx/insurance/history: the insurance fund's balance per coin over time (perpx's own).

Bybit's public `/v5/market/insurance` answers the fund's balance now; an operator (and the web
page's operator view, which charts it) also wants how it got there. This reads the history's
``insurance`` table (`perpx.readmodels.insurance`: one row per change of the fund, with the
balance after it), so the series outlives a restart and starts with the venue, not with
whoever is watching. Public like Bybit's fund endpoint (the fund is the venue's, no
account's); outside `/v5` so no client mistakes it for Bybit's.

Parameters: `coin` (optional: every settle coin), `startTime`/`endTime` (ms, inclusive) and
`limit` (1..1000, default 200). Rows come newest first, like Bybit's history endpoints:
`coin`, `balance` (after the change), `change`, `reason` (why the fund moved, the core's
`BalanceReason` name: LIQUIDATION, INSURANCE, TRADE, FUNDING, DELIVERY, DEPOSIT, ...; finer
than the transaction log's types, which fold several into one), `symbol`, `time` and `seq`.
"""

from __future__ import annotations

from typing import Any

from perpx.api.context import Access, Context, Endpoint
from perpx.convert import format_atoms
from perpx.rows import INSURANCE_MAX_LIMIT, InsuranceRecord

PATH = "/perpx/insurance/history"
DEFAULT_LIMIT = 200


async def insurance_history(ctx: Context) -> dict[str, Any]:
    """Return the fund's changes in [startTime, endTime], newest first (see the module)."""
    params = ctx.params
    coin = params.text("coin")
    start = params.integer("startTime", low=0)
    end = params.integer("endTime", low=0)
    limit = params.limit(DEFAULT_LIMIT, INSURANCE_MAX_LIMIT)
    settled = sorted({spec.settle_coin for spec in ctx.service.specs.values()})
    coins = [one for one in settled if not coin or one == coin]
    store = ctx.service.history

    def query() -> list[InsuranceRecord]:
        rows = [row for one in coins
                for row in store.insurance_history(one, start_ms=start, end_ms=end,
                                                   limit=limit)]
        rows.sort(key=lambda row: (row.ts_ms, row.seq, row.n), reverse=True)
        return rows[:limit]

    rows = await store.run(query) if coins else []
    return {"list": [{"coin": row.coin, "balance": format_atoms(row.balance_atoms),
                      "change": format_atoms(row.change_atoms), "reason": row.reason,
                      "symbol": row.symbol, "time": str(row.ts_ms), "seq": str(row.seq)}
                     for row in rows]}


ROUTES = [Endpoint("GET", PATH, insurance_history, Access.PUBLIC)]
