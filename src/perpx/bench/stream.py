"""The standard order stream: a seeded, reproducible mix of limits, cancels and market orders.

Every matching benchmark (perpx, the reference matcher, PyPI peers) replays the same stream,
so their figures compare like with like. An event is a plain tuple of ints:

- ``(LIMIT, order_id, side, price_ticks, qty_lots)``
- ``(CANCEL, order_id, 0, 0, 0)``: the id of an earlier limit order (it may have filled since)
- ``(MARKET, order_id, side, 0, qty_lots)``

``side`` is ``BUY`` (0) or ``SELL`` (1); order ids start at 1 and rise by one.
"""

from __future__ import annotations

import random

LIMIT = 0
CANCEL = 1
MARKET = 2
BUY = 0
SELL = 1

StreamEvent = tuple[int, int, int, int, int]


def standard_stream(
    events: int,
    seed: int = 42,
    start_mid_ticks: int = 650_000,
    limit_share: float = 0.60,
    cancel_share: float = 0.30,
) -> list[StreamEvent]:
    """Generate `events` events: 60% limits around a moving mid, 30% cancels, 10% markets.

    Limit prices sit from 5 ticks through to 40 ticks behind the mid, so about one in nine
    limits crosses the spread and trades; the mid takes a random step of one tick on one event
    in four, so price levels are born and die as in a live book.
    """
    rng = random.Random(seed)
    out: list[StreamEvent] = []
    live: list[int] = []  # ids of limit orders the generator believes may still rest
    mid = start_mid_ticks
    next_id = 1
    for _ in range(events):
        r = rng.random()
        if r < 0.25:
            mid += 1 if rng.random() < 0.5 else -1
        kind_draw = rng.random()
        if kind_draw < limit_share or (kind_draw < limit_share + cancel_share and not live):
            side = BUY if rng.random() < 0.5 else SELL
            behind = rng.randint(-5, 40)
            price = mid - behind if side == BUY else mid + behind
            qty = rng.randint(1, 100)
            out.append((LIMIT, next_id, side, price, qty))
            live.append(next_id)
            next_id += 1
        elif kind_draw < limit_share + cancel_share:
            i = rng.randrange(len(live))
            live[i], live[-1] = live[-1], live[i]
            out.append((CANCEL, live.pop(), 0, 0, 0))
        else:
            side = BUY if rng.random() < 0.5 else SELL
            out.append((MARKET, next_id, side, 0, rng.randint(1, 50)))
            next_id += 1
    return out
