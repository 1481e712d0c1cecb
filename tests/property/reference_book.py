"""A deliberately simple exchange and book: one list of resting orders, sorted anew when read.

`ReferenceExchange` implements the same rules as the engine (validation order, band, time in
force, self-match prevention, amend priority) in the plainest way, with Fractions for the band,
so that the property tests can hold the engine's every outcome against it. `ReferenceBook` is
the same plainness behind the engine's `Book` protocol, so that the book property tests can
hold any book implementation against it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from perpx.core import CancelReason, OrderType, RejectCode, Side, SmpType, TimeInForce
from perpx.core.book import Book, Fill, MakerCancel, MatchStep, ReduceRoom
from perpx.core.book.order import RestingOrder
from perpx.core.errors import InvariantViolation
from perpx.core.instruments import InstrumentSpec
from perpx.core.lifecycle import TRANSITIONS, Happening

Outcome = tuple[object, ...]


@dataclass
class RefOrder:
    oid: int
    account: int
    side: Side
    price: int
    qty: int
    filled: int
    tif: TimeInForce
    smp: SmpType
    link: str
    arrival: int

    @property
    def leaves(self) -> int:
        return self.qty - self.filled


class ReferenceExchange:
    """Plain-list reference for one symbol."""

    def __init__(self, spec: InstrumentSpec) -> None:
        if spec.price_limit_ratio_x > spec.price_limit_ratio_y:
            raise ValueError("the reference assumes X <= Y")
        self.spec = spec
        self.resting: list[RefOrder] = []
        self.last_price: int | None = None
        self.next_oid = 1
        self.arrival = 0

    # -- views --------------------------------------------------------------------------

    def side_orders(self, side: Side) -> list[RefOrder]:
        mine = [o for o in self.resting if o.side is side]
        if side is Side.BUY:
            return sorted(mine, key=lambda o: (-o.price, o.arrival))
        return sorted(mine, key=lambda o: (o.price, o.arrival))

    def book_view(self) -> list[tuple[int, int, int, int]]:
        return [(int(o.side), o.price, o.oid, o.leaves)
                for side in (Side.BUY, Side.SELL) for o in self.side_orders(side)]

    def best(self, side: Side) -> int | None:
        orders = self.side_orders(side)
        return orders[0].price if orders else None

    def band(self) -> tuple[int, int] | None:
        if self.last_price is None:
            return None
        return self.band_around(self.last_price)

    def band_around(self, mark: int) -> tuple[int, int]:
        x = Fraction(self.spec.price_limit_ratio_x, 10**8)
        low = math.ceil(mark * (1 - x))
        high = math.floor(mark * (1 + x))
        return max(low, self.spec.min_price_ticks), min(high, self.spec.max_price_ticks)

    # -- commands -----------------------------------------------------------------------

    def place(self, account: int, side: Side, kind: OrderType, qty: int, price: int | None,
              tif: TimeInForce, smp: SmpType, link: str) -> list[Outcome]:
        spec = self.spec
        market = kind is OrderType.MARKET
        cap = spec.max_mkt_order_qty_lots if market else spec.max_order_qty_lots
        if qty <= 0:
            return [("reject", RejectCode.INVALID_QTY)]
        if qty < spec.min_order_qty_lots:
            return [("reject", RejectCode.QTY_BELOW_MIN)]
        if qty > cap:
            return [("reject", RejectCode.QTY_ABOVE_MAX)]
        if link and not re.fullmatch(r"[A-Za-z0-9_-]{1,36}", link):
            return [("reject", RejectCode.INVALID_ORDER_LINK_ID)]
        if link and any(o.account == account and o.link == link for o in self.resting):
            return [("reject", RejectCode.DUPLICATE_ORDER_LINK_ID)]
        if sum(o.account == account for o in self.resting) >= spec.max_active_orders:
            return [("reject", RejectCode.TOO_MANY_ACTIVE_ORDERS)]
        if market:
            reference = self.last_price
            if reference is None:
                reference = self.best(side.opposite)
            if reference is None:
                return [("reject", RejectCode.NO_REFERENCE_PRICE)]
            low, high = self.band_around(reference)
            work_price = high if side is Side.BUY else low
            value_price = reference
            tif = TimeInForce.IOC
        else:
            if price is None or price <= 0:
                return [("reject", RejectCode.INVALID_PRICE)]
            if not spec.min_price_ticks <= price <= spec.max_price_ticks:
                return [("reject", RejectCode.PRICE_OUT_OF_RANGE)]
            work_price = self.clamp(side, price)
            value_price = work_price
        if value_price * qty * spec.atoms_per_tick_lot < spec.min_notional_atoms:
            return [("reject", RejectCode.NOTIONAL_BELOW_MIN)]
        order = RefOrder(self.next_oid, account, side, work_price, qty, 0, tif, smp, link, 0)
        self.next_oid += 1
        out: list[Outcome] = [("accept", order.oid, work_price, qty)]
        self.run(order, out)
        return out

    def clamp(self, side: Side, price: int) -> int:
        band = self.band()
        if band is None:
            return price
        low, high = band
        if side is Side.BUY:
            return min(price, high)
        return max(price, low)

    def crosses(self, order: RefOrder, maker_price: int) -> bool:
        return maker_price <= order.price if order.side is Side.BUY else maker_price >= order.price

    def run(self, order: RefOrder, out: list[Outcome]) -> None:
        opposite = order.side.opposite
        if order.tif is TimeInForce.POST_ONLY:
            best = self.best(opposite)
            if best is not None and self.crosses(order, best):
                out.append(("cancel", order.oid, order.leaves, CancelReason.POST_ONLY_WOULD_TAKE))
                return
        if order.tif is TimeInForce.FOK and self.fillable(order) < order.leaves:
            out.append(("cancel", order.oid, order.leaves, CancelReason.FOK_NOT_FILLABLE))
            return
        stopped = False
        for maker in self.side_orders(opposite):
            if order.leaves == 0 or not self.crosses(order, maker.price):
                break
            if order.smp is not SmpType.NONE and maker.account == order.account:
                if order.smp in (SmpType.CANCEL_MAKER, SmpType.CANCEL_BOTH):
                    self.resting.remove(maker)
                    out.append(("cancel", maker.oid, maker.leaves, CancelReason.SELF_MATCH))
                if order.smp is not SmpType.CANCEL_MAKER:
                    stopped = True
                    break
                continue
            fill = min(order.leaves, maker.leaves)
            order.filled += fill
            maker.filled += fill
            self.last_price = maker.price
            out.append(("trade", maker.price, fill, order.oid, maker.oid))
            if maker.leaves == 0:
                self.resting.remove(maker)
        if order.leaves == 0:
            return
        if stopped:
            out.append(("cancel", order.oid, order.leaves, CancelReason.SELF_MATCH))
        elif order.tif in (TimeInForce.IOC, TimeInForce.FOK):
            reason = CancelReason.IOC_REMAINDER if order.filled else CancelReason.NO_IMMEDIATE_QTY
            out.append(("cancel", order.oid, order.leaves, reason))
        else:
            self.arrival += 1
            order.arrival = self.arrival
            self.resting.append(order)

    def fillable(self, order: RefOrder) -> int:
        total = 0
        for maker in self.side_orders(order.side.opposite):
            if not self.crosses(order, maker.price):
                break
            if order.smp is not SmpType.NONE and maker.account == order.account:
                if order.smp is SmpType.CANCEL_MAKER:
                    continue
                return total
            total += maker.leaves
        return total

    def find(self, account: int, oid: int) -> RefOrder | None:
        for order in self.resting:
            if order.oid == oid and order.account == account:
                return order
        return None

    def cancel(self, account: int, oid: int) -> list[Outcome]:
        order = self.find(account, oid)
        if order is None:
            return [("reject", RejectCode.ORDER_NOT_FOUND)]
        self.resting.remove(order)
        return [("cancel", oid, order.leaves, CancelReason.BY_USER)]

    def cancel_all(self, account: int) -> list[Outcome]:
        out: list[Outcome] = []
        for order in sorted((o for o in self.resting if o.account == account),
                            key=lambda o: o.oid):
            out.extend(self.cancel(account, order.oid))
        return out

    def amend(self, account: int, oid: int, qty: int | None, price: int | None) -> list[Outcome]:
        spec = self.spec
        order = self.find(account, oid)
        if order is None:
            return [("reject", RejectCode.ORDER_NOT_FOUND)]
        new_qty = order.qty if qty is None else qty
        new_price = order.price if price is None else price
        if qty is not None:
            if qty <= order.filled:
                return [("reject", RejectCode.AMEND_QTY_NOT_ABOVE_FILLED)]
            if qty < spec.min_order_qty_lots:
                return [("reject", RejectCode.QTY_BELOW_MIN)]
            if qty > spec.max_order_qty_lots:
                return [("reject", RejectCode.QTY_ABOVE_MAX)]
        if price is not None:
            if price <= 0:
                return [("reject", RejectCode.INVALID_PRICE)]
            if not spec.min_price_ticks <= price <= spec.max_price_ticks:
                return [("reject", RejectCode.PRICE_OUT_OF_RANGE)]
            new_price = self.clamp(order.side, price)
        if new_qty == order.qty and new_price == order.price:
            return [("reject", RejectCode.NOTHING_TO_AMEND)]
        if new_price * new_qty * spec.atoms_per_tick_lot < spec.min_notional_atoms:
            return [("reject", RejectCode.NOTIONAL_BELOW_MIN)]
        if new_price == order.price and new_qty < order.qty:
            order.qty = new_qty
            return [("amend", oid, new_price, new_qty, order.leaves, True)]
        self.resting.remove(order)
        order.qty = new_qty
        order.price = new_price
        out: list[Outcome] = [("amend", oid, new_price, new_qty, order.leaves, False)]
        self.run(order, out)
        return out


class ReferenceBook:
    """The `Book` protocol in the plainest way: one list in arrival order, sorted when read."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.resting: list[RestingOrder] = []

    def side_orders(self, side: Side) -> list[RestingOrder]:
        """The live orders of `side`, best price first, then oldest first (a stable sort)."""
        mine = [o for o in self.resting if o.side is side]
        sign = -1 if side is Side.BUY else 1
        return sorted(mine, key=lambda o: sign * o.price_ticks)

    @staticmethod
    def within(taker: RestingOrder, price_ticks: int, limit_price_ticks: int) -> bool:
        if taker.side is Side.BUY:
            return price_ticks <= limit_price_ticks
        return price_ticks >= limit_price_ticks

    def add(self, order: RestingOrder) -> None:
        order.in_book = True
        self.resting.append(order)

    def remove(self, order: RestingOrder) -> None:
        order.in_book = False
        self.resting.remove(order)

    def best_bid(self) -> int | None:
        bids = self.side_orders(Side.BUY)
        return bids[0].price_ticks if bids else None

    def best_ask(self) -> int | None:
        asks = self.side_orders(Side.SELL)
        return asks[0].price_ticks if asks else None

    def crosses(self, side: Side, price_ticks: int) -> bool:
        best = self.best_ask() if side is Side.BUY else self.best_bid()
        if best is None:
            return False
        return best <= price_ticks if side is Side.BUY else best >= price_ticks

    def depth(self, limit: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        out: list[list[tuple[int, int]]] = []
        for side in (Side.BUY, Side.SELL):
            totals: dict[int, int] = {}
            for order in self.side_orders(side):
                totals[order.price_ticks] = totals.get(order.price_ticks, 0) + order.leaves_lots
            out.append(list(totals.items())[:limit])
        return out[0], out[1]

    def orders_in_priority(self) -> list[RestingOrder]:
        return self.side_orders(Side.BUY) + self.side_orders(Side.SELL)

    def fillable_lots(self, order: RestingOrder) -> int:
        total = 0
        opposite = Side.SELL if order.side is Side.BUY else Side.BUY
        for maker in self.side_orders(opposite):
            if not self.within(order, maker.price_ticks, order.price_ticks):
                break
            if order.smp_type is not SmpType.NONE and maker.account_id == order.account_id:
                if order.smp_type is SmpType.CANCEL_MAKER:
                    continue
                break
            total += maker.leaves_lots
        return total

    def take_out(self, maker: RestingOrder, reason: CancelReason, ts_ms: int,
                 steps: list[MatchStep]) -> None:
        steps.append(MakerCancel(maker, maker.leaves_lots, reason))
        self.remove(maker)
        maker.status = TRANSITIONS[maker.status, Happening.CANCEL]
        maker.updated_ts_ms = ts_ms

    def match(self, taker: RestingOrder, limit_price_ticks: int, ts_ms: int,
              next_trade_id: int,
              reduce_room: ReduceRoom | None = None) -> tuple[list[MatchStep], int, bool, int]:
        """Each step takes the opposite side's best order afresh (a reduce-only maker cut to
        its room stays at the front, and is cancelled next if the taker still has leaves)."""
        steps: list[MatchStep] = []
        opposite = Side.SELL if taker.side is Side.BUY else Side.BUY
        smp = taker.smp_type
        stopped = False
        last_price = 0
        while taker.leaves_lots:
            makers = self.side_orders(opposite)
            if not makers or not self.within(taker, makers[0].price_ticks, limit_price_ticks):
                break
            maker = makers[0]
            if smp is not SmpType.NONE and maker.account_id == taker.account_id:
                if smp in (SmpType.CANCEL_MAKER, SmpType.CANCEL_BOTH):
                    self.take_out(maker, CancelReason.SELF_MATCH, ts_ms, steps)
                if smp is not SmpType.CANCEL_MAKER:
                    stopped = True
                    break
                continue
            qty = min(taker.leaves_lots, maker.leaves_lots)
            if maker.reduce_only and reduce_room is not None:
                room = reduce_room(maker, taker, steps)
                if room == 0:
                    self.take_out(maker, CancelReason.REDUCE_ONLY, ts_ms, steps)
                    continue
                qty = min(qty, room)
            taker.leaves_lots -= qty
            taker.filled_lots += qty
            maker.leaves_lots -= qty
            maker.filled_lots += qty
            maker.updated_ts_ms = ts_ms
            steps.append(Fill(maker, maker.price_ticks, qty, next_trade_id, taker.leaves_lots,
                              maker.leaves_lots))
            next_trade_id += 1
            last_price = maker.price_ticks
            if maker.leaves_lots == 0:
                self.remove(maker)
                maker.status = TRANSITIONS[maker.status, Happening.FULL_FILL]
            else:
                maker.status = TRANSITIONS[maker.status, Happening.PARTIAL_FILL]
        if last_price:
            taker.status = TRANSITIONS[
                taker.status, Happening.PARTIAL_FILL if taker.leaves_lots else Happening.FULL_FILL]
        return steps, next_trade_id, stopped, last_price

    def check_invariants(self) -> None:
        bid, ask = self.best_bid(), self.best_ask()
        if bid is not None and ask is not None and bid >= ask:
            raise InvariantViolation(f"{self.symbol}: reference book crossed")
        if any(o.leaves_lots <= 0 or not o.in_book for o in self.resting):
            raise InvariantViolation(f"{self.symbol}: reference book holds a spent order")


def _satisfies_the_protocol(book: ReferenceBook) -> Book:
    return book  # mypy checks here that the reference is a Book too
