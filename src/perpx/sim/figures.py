"""Whether a simulated market behaves like one (issue #19): basis, premium, funding, ADL.

`MarketFigures` is an observer: at each minute's premium sample (`PremiumIndexSampled`) it
records the premium index and the basis ``|last − index| / index`` of that moment (last =
the latest trade), and it counts funding rates, liquidations (`Liquidated`) and ADL steps
(`Deleveraged`), with each ADL step's cause when given an `AdlCauses`
(`perpx.sim.adlcause`). Everything is folded from events, in integers (rates in 10**-8).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from perpx.convert import format_rate
from perpx.core.commands import Command
from perpx.core.events import (
    Deleveraged,
    Event,
    FundingSettled,
    IndexPriceUpdated,
    Liquidated,
    PremiumIndexSampled,
    Trade,
)
from perpx.core.numbers import RATE_ONE
from perpx.sim.adlcause import CAUSES, AdlCauses


def percentile(values: Sequence[int], share_percent: int) -> int | None:
    """Return the nearest-rank percentile of `values` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-share_percent * len(ordered) // 100))
    return ordered[rank - 1]


@dataclass(slots=True)
class MarketFigures:
    """Folds `(command, events)` of one symbol into the figures of issue #19."""

    symbol: str
    basis_rates: list[int] = field(default_factory=list)  # |last − index| / index, per minute
    premium_samples: int = 0
    premium_nonzero: int = 0
    funding_rates: list[int] = field(default_factory=list)
    liquidations: int = 0
    adl_steps: int = 0
    causes: AdlCauses | None = None  # each ADL step's cause (fund, pool, book)
    _last: int | None = None
    _index: int | None = None

    def __call__(self, command: Command, events: list[Event]) -> None:
        """Observe one applied command (the `Simulation` observer signature)."""
        if self.causes is not None:
            self.causes(command, events)
        for event in events:
            if getattr(event, "symbol", self.symbol) != self.symbol:
                continue
            if isinstance(event, Trade):
                self._last = event.price_ticks
            elif isinstance(event, IndexPriceUpdated):
                self._index = event.price_ticks
            elif isinstance(event, PremiumIndexSampled):
                self.premium_samples += 1
                self.premium_nonzero += event.premium_rate != 0
                if self._last is not None and self._index:
                    self.basis_rates.append(abs(self._last - self._index) * RATE_ONE
                                            // self._index)
            elif isinstance(event, FundingSettled):
                self.funding_rates.append(event.rate)
            elif isinstance(event, Liquidated):
                self.liquidations += 1
            elif isinstance(event, Deleveraged):
                self.adl_steps += 1

    def basis_p95_rate(self) -> int | None:
        """Return the p95 of |last − index| / index over the minutes, in 10**-8."""
        return percentile(self.basis_rates, 95)

    def premium_nonzero_share(self) -> float:
        """Return the share of premium samples (minutes) whose premium index is not zero."""
        return self.premium_nonzero / self.premium_samples if self.premium_samples else 0.0

    def adl_ratio(self) -> float | None:
        """Return ADL steps per liquidation (None without a liquidation)."""
        return self.adl_steps / self.liquidations if self.liquidations else None

    def adl_cause_text(self) -> str:
        """Return the ADL steps by cause, ``fund 3, pool 0, book 1`` ('' without causes)."""
        if self.causes is None:
            return ""
        return ", ".join(f"{c} {self.causes.counts[c]}" for c in CAUSES)

    def as_dict(self) -> dict[str, Any]:
        """Return the figures as JSON-ready values (rates as decimal strings)."""
        p95 = self.basis_p95_rate()
        rates = self.funding_rates
        return {
            "basis_p95": format_rate(p95) if p95 is not None else None,
            "basis_minutes": len(self.basis_rates),
            "premium_samples": self.premium_samples,
            "premium_nonzero_share": round(self.premium_nonzero_share(), 4),
            "funding_settlements": len(self.funding_rates),
            "funding_distinct_rates": len(set(self.funding_rates)),
            "funding_min": format_rate(min(rates)) if rates else None,
            "funding_max": format_rate(max(rates)) if rates else None,
            "funding_rates": [format_rate(r) for r in rates],
            "liquidations": self.liquidations,
            "adl_steps": self.adl_steps,
            "adl_per_liquidation": (round(ratio, 4) if (ratio := self.adl_ratio()) is not None
                                    else None),
            **({"adl_causes": dict(self.causes.counts)} if self.causes is not None else {}),
        }

    def rows(self) -> list[tuple[str, str]]:
        """Return the figures as summary-table rows."""
        figures = self.as_dict()
        ratio = figures["adl_per_liquidation"]
        return [
            ("p95 |last - index| / index", f"{figures['basis_p95']} "
                                           f"({figures['basis_minutes']} minutes)"),
            ("premium index non-zero", f"{figures['premium_nonzero_share']:.1%} of "
                                       f"{figures['premium_samples']} minutes"),
            ("distinct funding rates", f"{figures['funding_distinct_rates']} of "
                                       f"{figures['funding_settlements']} settlements"
                                       + (f" ({figures['funding_min']} to "
                                          f"{figures['funding_max']})"
                                          if self.funding_rates else "")),
            ("ADL steps / liquidations", f"{self.adl_steps} / {self.liquidations}"
                                         + (f" = {ratio:.1%}" if ratio is not None else "")
                                         + (f" (by cause: {self.adl_cause_text()})"
                                            if self.causes is not None and self.adl_steps
                                            else "")),
        ]
