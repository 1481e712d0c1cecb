"""Index-price feeds: sources of `(ts_ms, symbol, price)` observations for the engine.

Every feed yields decimal strings already on the instrument's tick grid, in time order; the
consumer turns them into ticks with `perpx.convert.to_ticks` (never through float).
"""

from perpx.feeds.base import IndexObservation, PriceFeed, merge_feeds, round_to_tick
from perpx.feeds.csv_replay import Candle, CandleReplay, candle_path, read_candles
from perpx.feeds.simulated import RandomWalkFeed

__all__ = [
    "Candle",
    "CandleReplay",
    "IndexObservation",
    "PriceFeed",
    "RandomWalkFeed",
    "candle_path",
    "merge_feeds",
    "read_candles",
    "round_to_tick",
]
