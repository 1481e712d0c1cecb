"""The ADL rank indicator shown on positions, ranked at most once per second per symbol.

Ranking a side's queue reads every position of the symbol, too much for every position row
a request or a stream push builds. Bybit, too, refreshes the indicator periodically; here a
symbol is re-ranked when the engine's clock has moved a second past its last ranking, or when
the symbol has never been ranked.
"""

from __future__ import annotations

from perpx.core.engine import Engine
from perpx.core.risk.takeover import adl_rank_indicator

RERANK_MS = 1_000


class AdlIndicators:
    """`adlRankIndicator` (0-5) by (account, position idx), per symbol, cached for a second."""

    def __init__(self, engine: Engine, rerank_ms: int = RERANK_MS) -> None:
        self.engine = engine
        self.rerank_ms = rerank_ms
        self._ranked: dict[str, tuple[int, dict[tuple[int, int], int]]] = {}

    def rank(self, symbol: str, account_id: int, position_idx: int) -> int:
        """Return a position's indicator (0 when it holds nothing or is not ranked)."""
        return self.ranks(symbol).get((account_id, position_idx), 0)

    def ranks(self, symbol: str) -> dict[tuple[int, int], int]:
        """Return the symbol's indicators, re-ranking when the last ranking is a second old."""
        now = self.engine.last_ts_ms
        cached = self._ranked.get(symbol)
        if cached is not None and now - cached[0] < self.rerank_ms:
            return cached[1]
        ranks = adl_rank_indicator(self.engine.clearing, symbol)
        self._ranked[symbol] = (now, ranks)
        return ranks
