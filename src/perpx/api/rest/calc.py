"""GET /perpx/calc/order: perpx's own read-only calculator endpoint (not part of Bybit's API).

The web page's ticket shows an order's cost and the liquidation price of the position it would
open before it is sent. Bybit's V5 API has no endpoint for either, and porting the formulas to
JavaScript would give them a second home; so this route answers with `perpx.calculator`, the
code behind `perpx calc cost` and `perpx calc position`, figure for figure. It is public,
unsigned and stateless: it reads only the instrument's specification, never an account, so
it goes through the public per-address throttle and the same parameter checks (Bybit's 10001
for a bad parameter) as the market endpoints. The path is outside `/v5` so that no client can
mistake it for Bybit's.
"""

from __future__ import annotations

from typing import Any

from perpx import calculator
from perpx.api.context import Access, Context, Endpoint
from perpx.bybit.errors import params_error
from perpx.convert import to_lots, to_ticks

PATH = "/perpx/calc/order"
SIDES = {"Buy": "buy", "Sell": "sell"}


async def order(ctx: Context) -> dict[str, Any]:
    """Return the cost of an order and the isolated position it would open at its price.

    `symbol`, `side` (Buy/Sell), `price`, `qty` and `leverage` are required; `price` and
    `qty` must be on the instrument's grid and within its order bounds, `leverage` within its
    range. The liquidation price is the isolated one at `price` as entry (`perpx calc position`); a
    cross position's depends on the whole account, which this endpoint does not read.
    """
    params = ctx.params
    spec = params.spec(ctx.service.specs)
    assert spec is not None
    side = params.choice("side", SIDES, required=True)
    price = params.text("price", required=True)
    qty = params.text("qty", required=True)
    leverage = params.text("leverage", required=True)
    # Off-grid or malformed numbers raise ConversionError: the dispatcher answers Bybit's code.
    # The instrument's price and quantity bounds, as an order's (limit orders' quantity cap).
    if not spec.min_price_ticks <= to_ticks(spec, price) <= spec.max_price_ticks:
        raise params_error("price invalid")
    if not spec.min_order_qty_lots <= to_lots(spec, qty) <= spec.max_order_qty_lots:
        raise params_error("qty invalid")
    given = calculator.inputs(spec, side, leverage, None)
    if not spec.min_leverage <= given.leverage <= spec.max_leverage:
        raise params_error("leverage invalid")
    return {"symbol": spec.symbol, "side": params.text("side"), "price": price, "qty": qty,
            "leverage": leverage, "cost": calculator.order_cost(given, price, qty),
            "position": calculator.position(given, price, qty)}


ROUTES = [Endpoint("GET", PATH, order, Access.PUBLIC)]
