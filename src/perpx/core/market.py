"""The market: instruments, books, open orders and the prices they are valued and banded at.

The state every subsystem reads (validation, the trigger engine, pricing, the risk index, the
liquidation engine) is owned here, and the engine holds it: a subsystem is handed the market,
never the engine. The engine changes the books and the open-order indexes as orders run;
pricing moves the index and mark; the matcher's prints move the last price. Whoever moves a
reference price drops the symbol's cached band (`drop_band`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from perpx.core.book.book import OrderBook
from perpx.core.book.order import RestingOrder
from perpx.core.instruments import InstrumentSpec
from perpx.core.prices.prices import PriceBand, order_price_band

# Order link ids in use: account id -> link id -> order id (the open and waiting orders').
# Read and changed only through the three functions below.
LinkIndex = dict[int, dict[str, int]]


def linked_order_id(by_link: LinkIndex, account_id: Any, link: str) -> int | None:
    """Return the id of the account's open or waiting order with link id `link`, if any.

    `account_id` is typed Any so that a caller's boxed id is looked up as it is: compiled, an
    int parameter is unboxed and boxed anew for the lookup.
    """
    links = by_link.get(account_id)
    return links.get(link) if links is not None else None


def index_link(by_link: LinkIndex, account_id: Any, link: str, order_id: Any) -> None:
    """Note that the account's order `order_id` carries link id `link`."""
    links = by_link.get(account_id)
    if links is None:
        links = by_link[account_id] = {}
    links[link] = order_id


def unindex_link(by_link: LinkIndex, account_id: Any, link: str) -> None:
    """Forget the account's link id `link` (its order left); drop an account left with none."""
    links = by_link[account_id]
    del links[link]
    if not links:
        del by_link[account_id]


class Market:
    """Instruments, books, open-order indexes and the last, mark and index prices."""

    def __init__(self, instruments: Iterable[InstrumentSpec]) -> None:
        self.instruments: dict[str, InstrumentSpec] = {}
        self.books: dict[str, OrderBook] = {}
        for spec in instruments:
            if spec.symbol in self.instruments:
                raise ValueError(f"duplicate instrument {spec.symbol}")
            self.instruments[spec.symbol] = spec
            self.books[spec.symbol] = OrderBook(spec.symbol)
        self.open_orders: dict[int, RestingOrder] = {}
        # Order link ids of open and waiting orders by account (`LinkIndex`), and open orders
        # by account, then symbol, then id. Nested, not keyed by (account, symbol) or
        # (account, link id): such a key is a tuple built, hashed and compared field by field
        # at each of the several lookups of every order's life (issue #14). Neither level
        # holds an empty dict.
        self.by_link: LinkIndex = {}
        self.orders_by_account: dict[int, dict[str, dict[int, RestingOrder]]] = {}
        self.last_price: dict[str, int] = {}
        self.mark_price: dict[str, int] = {}
        self.index_price: dict[str, int] = {}
        # Bands by symbol; an entry is dropped whenever the symbol's last, mark or index moves.
        self.bands: dict[str, PriceBand] = {}

    def mark_of(self, symbol: str) -> int | None:
        """Return the price positions are valued at: mark, else last traded, else None.

        A venue with no mark published yet (a matching bench, a fresh book) is told by the
        marks' size, not by a lookup that cannot find one: several are asked per order.
        """
        marks = self.mark_price
        # Typed Any: compiled, a mark narrowed to int by the test below is unboxed and boxed
        # anew (a new object past 256) to be returned, at each of the several calls an order.
        # (The cast to a union is a type check, not an unboxing.)
        mark: Any = marks.get(symbol) if marks else None
        if mark is not None:
            return cast("int | None", mark)
        return self.last_price.get(symbol)

    def reference_price(self, symbol: str) -> int | None:
        """Return the price the band is built around: mark, else last traded, else None."""
        return self.mark_of(symbol)

    def order(self, order_id: int) -> RestingOrder | None:
        """Return the open order with `order_id`, if any."""
        return self.open_orders.get(order_id)

    def orders_of(self, account_id: int, symbol: str) -> list[RestingOrder]:
        """Return an account's open orders on `symbol` by order id (the order they were placed)."""
        by_symbol = self.orders_by_account.get(account_id)
        mine = by_symbol.get(symbol) if by_symbol is not None else None
        return [mine[order_id] for order_id in sorted(mine)] if mine else []

    def price_band(self, spec: InstrumentSpec) -> tuple[int, int] | None:
        """Return the (min_sell, max_buy) band of `spec` now; cached until a reference moves."""
        band = self.band_of(spec)
        return None if band is None else (band.min_sell_ticks, band.max_buy_ticks)

    def band_of(self, spec: InstrumentSpec) -> PriceBand | None:
        """Return `price_band` as its record, for the hot path of every order."""
        band = self.bands.get(spec.symbol)
        if band is None:
            reference = self.reference_price(spec.symbol)
            if reference is None:
                return None
            min_sell, max_buy = order_price_band(spec, reference,
                                                 self.index_price.get(spec.symbol))
            band = self.bands[spec.symbol] = PriceBand(min_sell, max_buy)
        return band

    def drop_band(self, symbol: str) -> None:
        """Forget the cached price band of `symbol`: one of its reference prices moved."""
        self.bands.pop(symbol, None)
