"""A deterministic, bounded order flow for crash tests and the journal benchmark.

Deposits for every account, then limit orders around a slowly moving mid (about a third of
them cross the spread and trade), cancels by order link id, market orders, small withdrawals,
index prices and ticks. The flow is a pure function of its seed and position, so a test can
say exactly what was offered; seq and time are the sequencer's.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from perpx.core.commands import (
    CancelOrder,
    Command,
    Deposit,
    IndexPrice,
    PlaceOrder,
    Tick,
    Withdraw,
)
from perpx.core.enums import OrderType, Side

SYMBOL = "BTCUSDT"
MID_TICKS = 650_000
DEPOSIT_ATOMS = 10**7 * 10**8  # 10M USDT: enough that nobody nears liquidation


def order_flow(count: int, seed: int, accounts: int = 20, start: int = 0) -> Iterator[Command]:
    """Yield `count` commands (seq and time 0: the sequencer stamps them)."""
    rng = random.Random(f"{seed}:{start}")
    produced = 0
    if start == 0:
        for account in range(1, accounts + 1):
            if produced == count:
                return
            yield Deposit(0, 0, account, "USDT", DEPOSIT_ATOMS)
            produced += 1
    mid = MID_TICKS + rng.randint(-50, 50)
    placed: list[tuple[int, str]] = []
    n = 0
    while produced < count:
        n += 1
        produced += 1
        account = rng.randint(1, accounts)
        draw = rng.random()
        if draw < 0.25:
            mid += rng.choice((-1, 1))
        if draw < 0.60 or not placed:
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            away = rng.randint(-8, 30)
            price = mid - away if side is Side.BUY else mid + away
            link = f"s{seed}-{start}-{n}"
            placed.append((account, link))
            yield PlaceOrder(0, 0, account, SYMBOL, side, OrderType.LIMIT,
                             rng.randint(1, 200), price, order_link_id=link)
        elif draw < 0.85:
            owner, link = placed.pop(rng.randrange(len(placed)))
            yield CancelOrder(0, 0, owner, SYMBOL, order_link_id=link)
        elif draw < 0.95:
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            yield PlaceOrder(0, 0, account, SYMBOL, side, OrderType.MARKET, rng.randint(1, 50))
        elif draw < 0.97:
            yield Withdraw(0, 0, account, "USDT", rng.randint(1, 10**9))
        elif draw < 0.99:
            yield IndexPrice(0, 0, SYMBOL, mid + rng.randint(-20, 20))
        else:
            yield Tick(0, 0)
