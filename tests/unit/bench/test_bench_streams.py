"""`perpx bench match`: the realistic stream really refuses, liquidates and settles funding, the
same way every run; the O(log n) reference book matches like the plain sorted-list book."""

from __future__ import annotations

import bisect

from perpx.bench.match import bench_match, profile_engine
from perpx.bench.realistic import realistic_stream
from perpx.bench.reference import LevelBook
from perpx.bench.stream import BUY, CANCEL, LIMIT, SELL, standard_stream

COUNTED = ("commands", "accepted", "refused_margin", "fills", "liquidations",
           "funding_settlements", "index_moves", "ticks", "cancels")


def test_both_streams_run_small_and_the_realistic_one_exercises_every_path() -> None:
    first = bench_match(2_000, with_peers=False, echo=lambda _: None)
    assert first["events"] == 2_000 and first["events_per_s"] > 0
    assert first["reference"]["events_per_s"] > 0 and first["book"]["events_per_s"] > 0
    realistic = first["realistic"]
    assert realistic["events_per_s"] > 0 and realistic["p99_ns"] >= realistic["p50_ns"] > 0
    counts = realistic["counts"]
    assert counts["commands"] == 2_000
    assert all(counts[name] > 0 for name in COUNTED), counts
    again = bench_match(2_000, with_peers=False, echo=lambda _: None)
    assert again["realistic"]["counts"] == counts


def test_the_realistic_stream_is_seeded() -> None:
    one, two = realistic_stream(1_500, seed=7), realistic_stream(1_500, seed=7)
    assert one.commands == two.commands and one.setup == two.setup
    assert one.counts == two.counts
    assert realistic_stream(1_500, seed=8).commands != one.commands


class SortedListBook:
    """The plain book of sorted lists the benchmark used before: slow, obviously right."""

    def __init__(self) -> None:
        self.sides: tuple[list[list[int]], list[list[int]]] = ([], [])  # [key, arrival, id, qty]
        self.where: dict[int, list[int]] = {}
        self.arrival = 0
        self.trades = 0

    def take(self, side: int, qty: int, price: int | None) -> int:
        book = self.sides[1 - side]
        while qty and book:
            best = book[0]
            best_price = best[0] if side == BUY else -best[0]
            if price is not None and (best_price > price if side == BUY else best_price < price):
                break
            fill = min(qty, best[3])
            qty, best[3] = qty - fill, best[3] - fill
            self.trades += 1
            if best[3] == 0:
                book.pop(0)
                del self.where[best[2]]
        return qty

    def apply(self, kind: int, order_id: int, side: int, price: int, qty: int) -> None:
        if kind == CANCEL:
            entry = self.where.pop(order_id, None)
            if entry is not None:
                self.sides[BUY if entry[0] < 0 else SELL].remove(entry)
            return
        left = self.take(side, qty, price if kind == LIMIT else None)
        if left and kind == LIMIT:
            self.arrival += 1
            entry = [-price if side == BUY else price, self.arrival, order_id, left]
            bisect.insort(self.sides[side], entry)
            self.where[order_id] = entry

    def resting(self, side: int) -> list[tuple[int, int, int]]:
        return [(abs(key), order_id, qty) for key, _, order_id, qty in self.sides[side]]


def test_the_level_book_fills_and_rests_exactly_as_the_sorted_list_book() -> None:
    level, plain = LevelBook(), SortedListBook()
    for n, (kind, order_id, side, price, qty) in enumerate(standard_stream(20_000, seed=3)):
        if kind == LIMIT:
            level.limit(order_id, side, price, qty)
        elif kind == CANCEL:
            level.cancel(order_id)
        else:
            level.market(side, qty)
        plain.apply(kind, order_id, side, price, qty)
        if n % 997 == 0:
            assert level.trades == plain.trades
            assert level.resting(BUY) == plain.resting(BUY)
            assert level.resting(SELL) == plain.resting(SELL)
    assert level.trades == plain.trades > 1_000
    assert level.resting(BUY) == plain.resting(BUY)
    assert level.resting(SELL) == plain.resting(SELL)


def test_the_profile_lists_the_engine_functions() -> None:
    summary = profile_engine(500, top=5, echo=lambda _: None)
    # At least `apply` itself; with a compiled core cProfile sees no native call below it, so
    # the calls per command may be 1 and the rows fewer than `top` (only what runs as Python).
    assert summary["events"] == 500 and summary["calls_per_command"] >= 1
    assert 1 <= len(summary["by_cumulative"]) == len(summary["by_total"]) <= 5
    assert any("apply" in row[0] for row in summary["by_cumulative"])
