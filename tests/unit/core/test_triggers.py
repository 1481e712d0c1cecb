"""The trigger index: which entry a price point crosses next, and in what order."""

from __future__ import annotations

import pytest

from perpx.core.enums import TriggerBy, TriggerDirection
from perpx.core.orders.triggers import EntryKind, TriggerIndex

LAST = TriggerBy.LAST_PRICE
UP, DOWN = TriggerDirection.RISING, TriggerDirection.FALLING
FIRE = EntryKind.FIRE


def drain(index: TriggerIndex, price: int) -> list[int]:
    fired = []
    while (hit := index.next_crossed("BTCUSDT", LAST, price)) is not None:
        fired.append(hit[0])
        index.unfile(hit[0])
    return fired


@pytest.mark.parametrize(("filed", "price", "expected"), [
    ([(1, UP, 103), (2, UP, 101), (3, UP, 102)], 105, [2, 3, 1]),
    ([(1, DOWN, 97), (2, DOWN, 99), (3, DOWN, 98)], 95, [2, 3, 1]),
    ([(3, UP, 101), (1, UP, 101), (2, UP, 101)], 101, [1, 2, 3]),
    ([(1, UP, 101), (2, UP, 106)], 105, [1]),
    ([(2, UP, 98), (1, DOWN, 102)], 100, [1, 2]),
], ids=["a rise past three fires the lowest first", "a fall past three fires the highest first",
        "at one price, by order id", "an entry beyond the price stays",
        "rising and falling at the same distance go by order id"])
def test_a_point_crosses_entries_nearest_the_old_price_first(
        filed: list[tuple[int, TriggerDirection, int]], price: int,
        expected: list[int]) -> None:
    # Arrange
    index = TriggerIndex()
    for order_id, direction, trigger in filed:
        index.file(order_id, "BTCUSDT", LAST, direction, trigger, FIRE)

    # Act
    fired = drain(index, price)

    # Assert
    assert fired == expected


def test_unfiling_takes_every_entry_of_an_order_and_forgets_empty_lists() -> None:
    # Arrange: a trailing stop holds two entries
    index = TriggerIndex()
    index.file(7, "BTCUSDT", LAST, DOWN, 95, FIRE)
    index.file(7, "BTCUSDT", LAST, UP, 101, EntryKind.FOLLOW)

    # Act
    index.unfile(7)

    # Assert
    assert not index.watches("BTCUSDT", LAST)
    assert index.entries() == []
