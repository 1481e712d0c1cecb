"""Reference prices of a symbol and the order price band derived from them.

Bybit's band (spec §10, [B-PL-ANN]): ``maxBuy = min(M(1+Y), max(I, M(1+X)))`` and
``minSell = max(M(1-Y), min(I, M(1-X)))`` with M the mark and I the index price; from
2026-05-26 the premium term P (30 s mean of mid minus mark) widens the X bound:
``M(1+X) + max(0, P)`` and ``M(1-X) + min(0, P)``. The buy
bound rounds down and the sell bound up to the tick, so the band never widens by rounding.
"""

from __future__ import annotations

from perpx.core.instruments import InstrumentSpec
from perpx.core.numbers import RATE_ONE, div_ceil, div_floor


class PriceBand:
    """An order price band as a record: (min_sell, max_buy) ticks, `order_price_band`'s pair.

    What the market keeps per symbol and an order reads. Compiled, a ``tuple[int, int]`` is
    an unboxed pair: each read of one from a dict unboxed it and each return built a new
    tuple of two new int objects (ticks past 256), per order (issue #14); a record's fields
    are read in place.
    """

    __slots__ = ("max_buy_ticks", "min_sell_ticks")

    def __init__(self, min_sell_ticks: int, max_buy_ticks: int) -> None:
        self.min_sell_ticks = min_sell_ticks
        self.max_buy_ticks = max_buy_ticks


def order_price_band(
    spec: InstrumentSpec,
    mark_ticks: int,
    index_ticks: int | None = None,
    premium_ticks: int = 0,
) -> tuple[int, int]:
    """Return (min_sell_ticks, max_buy_ticks) around `mark_ticks`; index defaults to the mark."""
    index = mark_ticks if index_ticks is None else index_ticks
    x, y = spec.price_limit_ratio_x, spec.price_limit_ratio_y
    max_buy = min(
        div_floor(mark_ticks * (RATE_ONE + y), RATE_ONE),
        max(index, div_floor(mark_ticks * (RATE_ONE + x), RATE_ONE) + max(0, premium_ticks)),
    )
    min_sell = max(
        div_ceil(mark_ticks * (RATE_ONE - y), RATE_ONE),
        min(index, div_ceil(mark_ticks * (RATE_ONE - x), RATE_ONE) + min(0, premium_ticks)),
    )
    return max(min_sell, spec.min_price_ticks), min(max_buy, spec.max_price_ticks)
