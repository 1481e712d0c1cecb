"""A seeded random order flow of integer commands around a price: limits, IOC/FOK/PostOnly,
market orders, amends and cancels, from a few accounts."""

from __future__ import annotations

import random

from perpx.core import AmendOrder, CancelOrder, Engine, OrderType, PlaceOrder, Side, TimeInForce
from perpx.core.commands import Command

TIFS = (TimeInForce.GTC, TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK,
        TimeInForce.POST_ONLY)


def random_command(rng: random.Random, engine: Engine, symbol: str = "BTCUSDT",
                   mid: int = 300_000, accounts: tuple[int, ...] = (1, 2, 3)) -> Command:
    """One command; amends and cancels pick a live order of the engine."""
    account = rng.choice(accounts)
    roll = rng.random()
    mine = [o for o in engine.open_orders.values() if o.symbol == symbol]
    if mine and roll < 0.15:
        order = rng.choice(mine)
        return CancelOrder(0, 0, order.account_id, symbol, order.order_id)
    if mine and roll < 0.30:
        order = rng.choice(mine)
        qty = rng.choice([None, order.filled_lots + rng.randint(1, 20)])
        price = rng.choice([None, order.price_ticks + rng.randint(-3, 3) or order.price_ticks])
        if qty is None and price in (None, order.price_ticks):
            qty = order.qty_lots + 1
        return AmendOrder(0, 0, order.account_id, symbol, order.order_id, "", qty, price)
    side = rng.choice((Side.BUY, Side.SELL))
    qty = rng.randint(1, 20)
    if roll < 0.36:
        return PlaceOrder(0, 0, account, symbol, side, OrderType.MARKET, qty)
    offset = rng.randint(-5, 150)  # mostly passive, sometimes crossing
    price = mid - offset if side is Side.BUY else mid + offset
    return PlaceOrder(0, 0, account, symbol, side, OrderType.LIMIT, qty, price, rng.choice(TIFS))
