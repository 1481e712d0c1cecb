"""Funding: impact prices, the premium index, the funding rate, and what each position pays.

Spec §6 (Bybit "Introduction to Funding Rate", Binance's identical method):
- premium index, every minute: ``P = [max(0, IB − I) − max(0, I − IA)] / I`` with IB/IA the
  average fill prices of the impact margin notional (seed 001: 0.1 BTC / 1 ETH of margin at
  the initial margin rate) on each side of the book;
- time-weighted premium over the interval's minutes: ``P̄ = Σ k·P_k / Σ k``;
- rate: ``F = clamp(P̄ + clamp(I − P̄, −0.05%, +0.05%), lower, upper)``, with the interest
  ``I`` = 0.01% per 8 h pro-rated to the instrument's interval;
- fee: ``position value at the mark × F``; positive F: longs pay shorts.
Rates are integers in 10**-8, rounded to the nearest (they are published figures); what a
position pays is rounded up and what it receives down, and the difference goes to the
insurance fund, so the transfer is exact (DESIGN.md).
"""

from __future__ import annotations

from typing import Final

from perpx.core.book.side import BookSide
from perpx.core.instruments import InstrumentSpec
from perpx.core.numbers import RATE_ONE, div_ceil, div_floor, div_round

MINUTE_MS: Final = 60_000
EIGHT_HOURS_MIN: Final = 480


class FundingState:
    """One symbol's funding clock and the premium samples of the running interval."""

    __slots__ = ("interval_min", "last_minute", "last_rate", "next_funding_ms", "predicted_rate",
                 "samples")

    def __init__(self, interval_min: int, next_funding_ms: int) -> None:
        self.interval_min = interval_min
        self.next_funding_ms = next_funding_ms
        self.samples: list[int] = []  # premium index per minute, 10**-8
        self.last_minute = -1  # the last minute (ms // 60,000) sampled
        self.last_rate = 0  # the rate settled at the last funding timestamp
        self.predicted_rate = 0

    def to_record(self) -> list[object]:
        """Return the state in a fixed order, for snapshots and the state hash."""
        return [self.interval_min, self.next_funding_ms, list(self.samples), self.last_minute,
                self.last_rate, self.predicted_rate]

    @classmethod
    def from_record(cls, record: list[object]) -> FundingState:
        """Rebuild from `to_record`."""
        interval, next_ms, samples, last_minute, last_rate, predicted = record
        state = cls(int(interval), int(next_ms))  # type: ignore[call-overload]
        state.samples = [int(s) for s in samples]  # type: ignore[attr-defined]
        state.last_minute = int(last_minute)  # type: ignore[call-overload]
        state.last_rate = int(last_rate)  # type: ignore[call-overload]
        state.predicted_rate = int(predicted)  # type: ignore[call-overload]
        return state


def next_funding_after(ts_ms: int, interval_min: int) -> int:
    """Return the first funding timestamp strictly after `ts_ms` (intervals align to 00:00 UTC)."""
    interval_ms = interval_min * MINUTE_MS
    return (div_floor(ts_ms, interval_ms) + 1) * interval_ms


def impact_qty_lots(spec: InstrumentSpec, price_ticks: int = 0) -> int:
    """Return the impact margin notional as a quantity: impact margin ÷ tier-1 IMR, in lots.

    ``0.1 BTC / 1%`` = 10 BTC for BTCUSDT (seed 001); rounded up to a whole lot. An inverse
    contract's lot is a USD amount, so its 10 BTC of value is a quantity only at a price
    (`price_ticks`, the index): the fewest lots worth that much there (0 without a price).
    """
    imr = spec.risk_tiers[0].imr
    if spec.contract.value_sign < 0:
        if price_ticks <= 0:
            return 0
        # The impact margin is in the base coin, which is the inverse contract's settle coin.
        value = div_ceil(spec.impact_margin_base_e8 * RATE_ONE, imr)
        return spec.contract.qty_for_value_lots(price_ticks, value)
    return div_ceil(spec.impact_margin_base_e8 * RATE_ONE, imr * spec.lot_base_e8)


def impact_price(side: BookSide, qty_lots: int) -> tuple[int, int] | None:
    """Return the average fill price (numerator, denominator in ticks) of `qty_lots` on `side`.

    None when the side holds less than `qty_lots`: the impact price is then undefined.
    """
    remaining = qty_lots
    cost = 0
    sign = side.sign
    for key in side.keys:
        price = key * sign
        take = min(remaining, side.levels[price].total_lots)
        cost += price * take
        remaining -= take
        if remaining == 0:
            return cost, qty_lots
    return None


def premium_index_rate(index_ticks: int, impact_bid: tuple[int, int] | None,
                       impact_ask: tuple[int, int] | None) -> int:
    """Return the premium index in 10**-8: ``[max(0, IB − I) − max(0, I − IA)] / I``, nearest.

    A side without enough depth contributes nothing.
    """
    # Over a common denominator: IB = bn/bd, IA = an/ad.
    bn, bd = impact_bid if impact_bid is not None else (index_ticks, 1)
    an, ad = impact_ask if impact_ask is not None else (index_ticks, 1)
    up = max(0, bn - index_ticks * bd) * ad
    down = max(0, index_ticks * ad - an) * bd
    return div_round((up - down) * RATE_ONE, index_ticks * bd * ad)


def interest_rate(spec: InstrumentSpec, interval_min: int) -> int:
    """Return the interest component per interval: 0.01% per 8 hours, pro-rated (spec §6.1)."""
    return div_round(spec.interest_rate_8h * interval_min, EIGHT_HOURS_MIN)


def funding_rate(spec: InstrumentSpec, samples: list[int], interval_min: int) -> int:
    """Return ``clamp(P̄ + clamp(I − P̄, ±0.05%), lower, upper)`` from the minute samples.

    ``P̄ = Σ k·P_k / Σ k`` over the samples so far (later minutes weigh more); with no
    sample yet the premium is taken as zero, so the rate is the interest alone.
    """
    weights = len(samples) * (len(samples) + 1) // 2
    weighted = sum(k * p for k, p in enumerate(samples, start=1))
    premium = div_round(weighted, weights) if weights else 0
    interest = interest_rate(spec, interval_min)
    clamp = spec.premium_clamp_rate
    rate = premium + max(-clamp, min(clamp, interest - premium))
    return max(spec.lower_funding_rate, min(spec.upper_funding_rate, rate))


def funding_fee_atoms(value_atoms: int, rate: int, pays: bool) -> int:
    """Return the magnitude of a funding transfer: ``value × |F|``, up if paid, down if received."""
    amount = value_atoms * abs(rate)
    return div_ceil(amount, RATE_ONE) if pays else div_floor(amount, RATE_ONE)


def position_funding_atoms(spec: InstrumentSpec, mark_ticks: int, qty_lots: int, rate: int,
                           pays: bool) -> int:
    """Return the magnitude of a position's funding transfer at the mark.

    ``value at the mark × |F|`` (spec §6.2), the value from the instrument's contract maths:
    rounded up with the fee when the position pays, down when it receives, so the transfer
    never hands out more than it collects.
    """
    contract = spec.contract
    if pays:
        return funding_fee_atoms(contract.value_ceil_atoms(mark_ticks, qty_lots), rate, True)
    return funding_fee_atoms(contract.value_floor_atoms(mark_ticks, qty_lots), rate, False)
