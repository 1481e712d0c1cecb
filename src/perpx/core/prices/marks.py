"""Mark prices: a perpetual's median of bases and LTP; a dated future's index and basis rate.

Perpetuals: median of the decaying funding basis, the basis MA and LTP.

Spec §5 ([B-MARK], 2026 text): ``Mark = median(Price1, Price2, LTP)`` with
- ``Price1 = Index × (1 + F × time until funding / funding interval)`` (seed 001's decaying
  funding basis, F the running rate),
- ``Price2 = Index + MA(basis)``, ``basis = (bid1 + ask1)/2 − Index`` sampled every second over
  a 2.5-minute window (§14 Q11, `InstrumentSpec.mark_basis_window_ms`).
Until a trade has happened LTP stands in as Price1, and until the basis has a sample Price2
does too, so the mark starts at Price1. Prices round to the nearest tick (a published figure).

Dated futures (next-mechanics §2.3, [B-MARK-FUT]): ``Mark = Index × (1 + basisRate)`` with
``basisRate`` the 10-minute moving average of ``(impactMid − Index) / Index``, sampled once a
second; the impact mid is the mean of the impact bid and ask prices (the average fill prices
of the impact margin notional, as for the premium index). A second whose book cannot fill
the impact notional on both sides takes no sample; with none the mark is the index.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from perpx.core.book.book import OrderBook
from perpx.core.numbers import RATE_ONE, div_round
from perpx.core.prices.funding import impact_price

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


class BasisRateWindow:
    """Per-second samples of a dated future's basis rate (10**-8) over a sliding window."""

    __slots__ = ("samples", "total", "window_ms")

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self.samples: deque[tuple[int, int]] = deque()  # (ts_ms, basis rate in 10**-8)
        self.total = 0

    def maybe_sample(self, ts_ms: int, book: OrderBook, index_ticks: int,
                     qty_lots: int) -> None:
        """Take one sample if a second has passed and both sides fill the impact quantity."""
        if self.samples and ts_ms - self.samples[-1][0] < SECOND_MS:
            return
        bid = impact_price(book.bids, qty_lots)
        ask = impact_price(book.asks, qty_lots)
        if bid is not None and ask is not None:
            rate = basis_rate(index_ticks, bid, ask)
            self.samples.append((ts_ms, rate))
            self.total += rate
        while self.samples and self.samples[0][0] <= ts_ms - self.window_ms:
            self.total -= self.samples.popleft()[1]

    def average_rate(self) -> tuple[int, int] | None:
        """Return the mean basis rate as a fraction of 10**-8, or None with no sample."""
        return (self.total, len(self.samples)) if self.samples else None

    def to_record(self) -> list[list[int]]:
        """Return the samples, for snapshots and the state hash."""
        return [[ts, rate] for ts, rate in self.samples]

    @classmethod
    def from_record(cls, window_ms: int, record: list[list[int]]) -> BasisRateWindow:
        """Rebuild from `to_record`."""
        window = cls(window_ms)
        for ts, rate in record:
            window.samples.append((ts, rate))
            window.total += rate
        return window


def basis_rate(index_ticks: int, impact_bid: tuple[int, int], impact_ask: tuple[int, int]
               ) -> int:
    """Return ``(impactMid − Index) / Index`` in 10**-8, to the nearest (§2.3).

    The impact prices are fractions of ticks (numerator, denominator), as `impact_price`
    returns them; ``impactMid = (IB + IA) / 2``.
    """
    bn, bd = impact_bid
    an, ad = impact_ask
    return div_round((bn * ad + an * bd - 2 * index_ticks * bd * ad) * RATE_ONE,
                     2 * bd * ad * index_ticks)


def futures_mark_price(index_ticks: int, rate: tuple[int, int] | None) -> int:
    """Return ``Index × (1 + basisRate)`` to the nearest tick; the index with no sample."""
    if rate is None:
        return index_ticks
    total, count = rate
    return div_round(index_ticks * (RATE_ONE * count + total), RATE_ONE * count)
