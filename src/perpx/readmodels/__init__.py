"""Read models: market views (klines, tickers, funding history, open interest) built from events.

Each model is an in-memory class with `apply(event)` and query methods. It reads nothing but
events (never the engine), so replaying a journal through it rebuilds it exactly. The rows
they hand to the history tables (`Candle`, `FundingRateRecord`) are `perpx.rows`'s.
"""

from perpx.readmodels.funding_history import FundingExecution, FundingHistory
from perpx.readmodels.klines import Klines, PriceSource
from perpx.readmodels.open_interest import OpenInterest, OpenInterestPoint
from perpx.readmodels.tickers import RollingDay, Ticker, Tickers
from perpx.rows import Candle, FundingRateRecord

__all__ = [
    "Candle",
    "FundingExecution",
    "FundingHistory",
    "FundingRateRecord",
    "Klines",
    "OpenInterest",
    "OpenInterestPoint",
    "PriceSource",
    "RollingDay",
    "Ticker",
    "Tickers",
]
