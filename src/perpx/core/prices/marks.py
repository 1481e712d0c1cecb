"""The mark price of a perpetual: median of the decaying funding basis, the basis MA and LTP.

Spec §5 ([B-MARK], 2026 text): ``Mark = median(Price1, Price2, LTP)`` with
- ``Price1 = Index × (1 + F × time until funding / funding interval)`` (seed 001's decaying
  funding basis, F the running rate),
- ``Price2 = Index + MA(basis)``, ``basis = (bid1 + ask1)/2 − Index`` sampled every second over
  a 2.5-minute window (§14 Q11, `InstrumentSpec.mark_basis_window_ms`).
Until a trade has happened LTP stands in as Price1, and until the basis has a sample Price2
does too, so the mark starts at Price1. Prices round to the nearest tick (a published figure).
"""

from __future__ import annotations

from collections import deque
from typing import Final

from perpx.core.book.book import OrderBook
from perpx.core.numbers import RATE_ONE, div_round

SECOND_MS: Final = 1_000


class BasisWindow:
    """Per-second samples of 2 × (mid − index), in ticks, over a sliding window."""

    __slots__ = ("samples", "total", "window_ms")

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self.samples: deque[tuple[int, int]] = deque()  # (ts_ms, 2 x basis in ticks)
        self.total = 0

    def maybe_sample(self, ts_ms: int, book: OrderBook, index_ticks: int) -> None:
        """Take one sample if a second has passed since the last and both sides quote."""
        if self.samples and ts_ms - self.samples[-1][0] < SECOND_MS:
            return
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None:
            basis2 = bid + ask - 2 * index_ticks
            self.samples.append((ts_ms, basis2))
            self.total += basis2
        while self.samples and self.samples[0][0] <= ts_ms - self.window_ms:
            self.total -= self.samples.popleft()[1]

    def average_basis(self) -> tuple[int, int] | None:
        """Return the mean basis as a fraction of ticks, or None with no sample."""
        return (self.total, 2 * len(self.samples)) if self.samples else None

    def to_record(self) -> list[list[int]]:
        """Return the samples, for snapshots and the state hash."""
        return [[ts, basis2] for ts, basis2 in self.samples]

    @classmethod
    def from_record(cls, window_ms: int, record: list[list[int]]) -> BasisWindow:
        """Rebuild from `to_record`."""
        window = cls(window_ms)
        for ts, basis2 in record:
            window.samples.append((ts, basis2))
            window.total += basis2
        return window


def decaying_funding_price(index_ticks: int, rate: int, until_funding_ms: int,
                           interval_ms: int) -> int:
    """Return Price1 = Index × (1 + F × t / interval), to the nearest tick."""
    return div_round(index_ticks * (RATE_ONE * interval_ms + rate * until_funding_ms),
                     RATE_ONE * interval_ms)


def basis_price(index_ticks: int, basis: tuple[int, int]) -> int:
    """Return Price2 = Index + MA(basis), to the nearest tick."""
    numerator, denominator = basis
    return index_ticks + div_round(numerator, denominator)


def mark_price(index_ticks: int, rate: int, until_funding_ms: int, interval_ms: int,
               basis: tuple[int, int] | None, last_ticks: int | None) -> int:
    """Return the median of Price1, Price2 and LTP (a missing one stands in as Price1)."""
    price1 = decaying_funding_price(index_ticks, rate, until_funding_ms, interval_ms)
    price2 = basis_price(index_ticks, basis) if basis is not None else price1
    last = last_ticks if last_ticks is not None else price1
    return sorted((price1, price2, last))[1]
