"""GET /perpx/calc/order: perpx's own read-only calculator endpoint (not part of Bybit's API).

The web page's ticket shows an order's cost and the liquidation price of the position it would
open before it is sent. Bybit's V5 API has no endpoint for either, and porting the formulas to
JavaScript would give them a second home; so this route answers with `perpx.calculator`, the
code behind `perpx calc cost` and `perpx calc position`, figure for figure. It is public,
unsigned and stateless: it reads only the instrument's specification, never an account, so
it goes through the public per-address throttle and the same parameter checks (Bybit's 10001
for a bad parameter) as the market endpoints. The path is outside `/v5` so that no client can
mistake it for Bybit's.

The ticket's quantity may be given by contracts (`qty`), by value (`value`: the order value in
the settle coin) or by cost (`cost`: initial margin plus the fees to open and close, seed
000's "order by cost"); `value` and `cost` become a quantity through `calculator.quantity`,
the code of `perpx calc qty`, so the page converts with the server's rounding (down to the
lot, never more than asked) and holds no formula of its own.
"""

from __future__ import annotations

from typing import Any

from perpx import calculator
from perpx.api.context import Access, Context, Endpoint
from perpx.bybit.errors import params_error
from perpx.convert import to_atoms, to_lots, to_ticks

PATH = "/perpx/calc/order"
SIDES = {"Buy": "buy", "Sell": "sell"}


async def order(ctx: Context) -> dict[str, Any]:
    """Return the cost of an order and the isolated position it would open at its price.

    `symbol`, `side` (Buy/Sell), `price` and `leverage` are required, and exactly one of
    `qty`, `value` or `cost` (the quantity is then the most lots whose value or cost is no
    more than it; the answer's `qty`); `price` and the quantity must be on the instrument's
    grid and within its order bounds, `leverage` within its range. The liquidation price is
    the isolated one at `price` as entry (`perpx calc position`); a cross position's
    depends on the whole account, which this endpoint does not read.
    """
    params = ctx.params
    spec = params.spec(ctx.service.specs)
    assert spec is not None
    side = params.choice("side", SIDES, required=True)
    price = params.text("price", required=True)
    leverage = params.text("leverage", required=True)
    given_as = [name for name in ("qty", "value", "cost") if params.text(name)]
    if len(given_as) != 1:
        raise params_error("give exactly one of qty, value or cost")
    given = calculator.inputs(spec, side, leverage, None)
    if not spec.min_leverage <= given.leverage <= spec.max_leverage:
        raise params_error("leverage invalid")
    by = given_as[0]
    if by == "qty":
        qty = params.text("qty")
    else:
        to_ticks(spec, price)  # an off-grid price is refused before it is used
        if to_atoms(params.text(by)) <= 0:
            raise params_error(f"{by} invalid")
        amount = params.text(by)
        qty = calculator.quantity(given, price, value=amount if by == "value" else None,
                                  cost=amount if by == "cost" else None)["qty"]
    # Off-grid or malformed numbers raise ConversionError: the dispatcher answers Bybit's code.
    # The instrument's price and quantity bounds, as an order's (limit orders' quantity cap).
    if not spec.min_price_ticks <= to_ticks(spec, price) <= spec.max_price_ticks:
        raise params_error("price invalid")
    if not spec.min_order_qty_lots <= to_lots(spec, qty) <= spec.max_order_qty_lots:
        raise params_error(f"{by} invalid" if by != "qty" else "qty invalid")
    return {"symbol": spec.symbol, "side": params.text("side"), "price": price, "qty": qty,
            "leverage": leverage, "by": by, "cost": calculator.order_cost(given, price, qty),
            "position": calculator.position(given, price, qty)}


ROUTES = [Endpoint("GET", PATH, order, Access.PUBLIC)]
