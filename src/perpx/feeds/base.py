"""The feed port: a `PriceFeed` yields index observations `(ts_ms, symbol, price)` in time order.

Prices are decimal strings on the instrument's tick grid (``"23144.70"``), never floats, so the
consumer converts them exactly with `perpx.convert.to_ticks`. Observations of one feed never go
back in time; `merge_feeds` interleaves several feeds and keeps that promise.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import NamedTuple, Protocol, runtime_checkable

# Enough digits for any price times any tick count without the context rounding silently.
DECIMAL_PRECISION = 60


class IndexObservation(NamedTuple):
    """One index price: at `ts_ms` (UTC epoch ms), `symbol` stood at `price` (decimal string)."""

    ts_ms: int
    symbol: str
    price: str


@runtime_checkable
class PriceFeed(Protocol):
    """A source of index observations in non-decreasing `ts_ms` order.

    Iterating a feed again starts it again from the beginning, with the same observations
    (a replay reads its file anew; a simulated feed reseeds its generator).
    """

    def __iter__(self) -> Iterator[IndexObservation]:
        """Yield the observations in time order."""
        ...


def round_to_tick(price: Decimal, tick_size: str) -> str:
    """Return `price` rounded to the nearest multiple of `tick_size`, halves away from zero.

    The result keeps the tick's decimals (tick ``"0.10"``: ``"23144.70"``), so
    `perpx.convert.to_ticks` accepts it. Index prices are published reference figures, so the
    rounding favours no side (the core's `div_round` does the same for the mark).
    """
    tick = Decimal(tick_size)
    if tick <= 0:
        raise ValueError(f"round_to_tick: tick size must be positive, was {tick_size}")
    with localcontext() as context:
        context.prec = DECIMAL_PRECISION
        count = (price / tick).to_integral_value(rounding=ROUND_HALF_UP)
        return format((count * tick).quantize(tick), "f")


def merge_feeds(feeds: Iterable[PriceFeed]) -> Iterator[IndexObservation]:
    """Interleave several feeds into one, by time and then by symbol (a stable, named order)."""
    return heapq.merge(*feeds, key=lambda observation: (observation.ts_ms, observation.symbol))
