"""Read models: market views (klines, tickers, funding history, open interest) built from events.

Each model is an in-memory class with `apply(event)` and query methods. It reads nothing but
events (never the engine), so replaying a journal through it rebuilds it exactly.
"""

from perpx.readmodels.funding_history import FundingExecution, FundingHistory, FundingRateRecord
from perpx.readmodels.klines import Candle, Klines, PriceSource
from perpx.readmodels.open_interest import OpenInterest, OpenInterestPoint
from perpx.readmodels.tickers import RollingDay, Ticker, Tickers

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
