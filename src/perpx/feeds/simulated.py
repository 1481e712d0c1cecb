"""A seeded geometric random walk of one symbol's index price, for simulations and tests.

Each step multiplies the price by ``exp(σ·√Δt·Z + (μ − σ²/2)·Δt)`` with Z standard normal
from `random.Random(seed)` and Δt the step in years, so the same seed gives the same path on
every run and every machine. Floats are fine here, outside the core: the walk keeps its
unrounded price as a float, and each observation is rounded to the tick as a decimal string.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from decimal import Decimal

from perpx.feeds.base import IndexObservation, round_to_tick

YEAR_MS = 365 * 24 * 3_600_000


class RandomWalkFeed:
    """A `PriceFeed`: `symbol` from `start_price`, one observation every `step_ms`.

    `volatility` and `drift` are annualised (0.6 is 60% a year). The first observation is
    the start price at `start_ms`; the feed ends before `end_ms`, or never when it is None.
    A price never rounds below one tick.
    """

    def __init__(self, symbol: str, tick_size: str, start_price: str, *, start_ms: int,
                 step_ms: int, volatility: float, seed: int, drift: float = 0.0,
                 end_ms: int | None = None) -> None:
        if step_ms <= 0:
            raise ValueError("RandomWalkFeed: step_ms must be positive")
        if volatility < 0:
            raise ValueError("RandomWalkFeed: volatility must not be negative")
        if Decimal(start_price) <= 0:
            raise ValueError("RandomWalkFeed: start price must be positive")
        self.symbol = symbol
        self.tick_size = tick_size
        self.start_price = start_price
        self.start_ms = start_ms
        self.step_ms = step_ms
        self.volatility = volatility
        self.drift = drift
        self.seed = seed
        self.end_ms = end_ms

    def __iter__(self) -> Iterator[IndexObservation]:
        """Yield the walk from its start; each iteration reseeds, so it repeats exactly."""
        rng = random.Random(self.seed)
        years = self.step_ms / YEAR_MS
        sigma = self.volatility * math.sqrt(years)
        trend = (self.drift - self.volatility**2 / 2) * years
        tick = Decimal(self.tick_size)
        price = float(Decimal(self.start_price))
        ts_ms = self.start_ms
        while self.end_ms is None or ts_ms < self.end_ms:
            text = round_to_tick(Decimal(price), self.tick_size)
            if Decimal(text) < tick:
                text = format(tick, "f")
            yield IndexObservation(ts_ms, self.symbol, text)
            price *= math.exp(sigma * rng.gauss(0.0, 1.0) + trend)
            ts_ms += self.step_ms
