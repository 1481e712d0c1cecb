"""Order books: price levels of FIFO queues, best prices and depth."""

from perpx.core.book.book import OrderBook
from perpx.core.book.fills import Fill, MakerCancel, MatchStep
from perpx.core.book.interface import Book, ReduceRoom

__all__ = ["Book", "Fill", "MakerCancel", "MatchStep", "OrderBook", "ReduceRoom"]
