"""The ADL indicator cache re-ranks a symbol at most once per second of engine time."""

from __future__ import annotations

from perpx.adl import AdlIndicators
from support.builders import Driver


def test_indicators_are_ranked_once_a_second_and_then_refreshed() -> None:
    d = Driver()
    d.mark("30000")
    d.limit(1, "Sell", "30000", "0.010")
    d.market(2, "Buy", "0.010")
    adl = AdlIndicators(d.engine)
    assert adl.rank("BTCUSDT", 1, 0) == 5 and adl.rank("BTCUSDT", 2, 0) == 5
    d.limit(3, "Sell", "30000", "0.010")
    d.market(4, "Buy", "0.010")
    assert adl.rank("BTCUSDT", 4, 0) == 0  # within the second: the old ranking
    d.ts_ms += 1_000
    d.mark("30000")
    assert adl.rank("BTCUSDT", 4, 0) in range(1, 6)
