"""The order lifecycle table: legal (status, happening) pairs and the bug raised for the rest."""

from __future__ import annotations

import itertools

import pytest

from perpx.core.enums import OrderStatus
from perpx.core.errors import InvariantViolation, PerpxBug
from perpx.core.lifecycle import TRANSITIONS, Happening, next_status

S = OrderStatus
H = Happening

LEGAL = [
    (S.NEW, H.PARTIAL_FILL, S.PARTIALLY_FILLED),
    (S.NEW, H.FULL_FILL, S.FILLED),
    (S.NEW, H.CANCEL, S.CANCELLED),
    (S.NEW, H.AMEND, S.NEW),
    (S.PARTIALLY_FILLED, H.PARTIAL_FILL, S.PARTIALLY_FILLED),
    (S.PARTIALLY_FILLED, H.FULL_FILL, S.FILLED),
    (S.PARTIALLY_FILLED, H.CANCEL, S.CANCELLED),
    (S.PARTIALLY_FILLED, H.AMEND, S.PARTIALLY_FILLED),
    (S.UNTRIGGERED, H.TRIGGER, S.TRIGGERED),
    (S.UNTRIGGERED, H.AMEND, S.UNTRIGGERED),
    (S.UNTRIGGERED, H.DEACTIVATE, S.DEACTIVATED),
    (S.TRIGGERED, H.PARTIAL_FILL, S.PARTIALLY_FILLED),
    (S.TRIGGERED, H.FULL_FILL, S.FILLED),
    (S.TRIGGERED, H.CANCEL, S.CANCELLED),
    (S.TRIGGERED, H.ACCEPT, S.NEW),
]
LEGAL_IDS = [
    "a new order partly filled becomes PartiallyFilled",
    "a new order fully filled becomes Filled",
    "a new order cancelled becomes Cancelled",
    "a new order amended stays New",
    "a partly filled order filled again stays PartiallyFilled",
    "a partly filled order filled in full becomes Filled",
    "a partly filled order cancelled becomes Cancelled",
    "a partly filled order amended stays PartiallyFilled",
    "a conditional order triggered becomes Triggered",
    "a conditional order amended stays Untriggered",
    "a conditional order cancelled before trigger becomes Deactivated",
    "a triggered order partly filled becomes PartiallyFilled",
    "a triggered order fully filled becomes Filled",
    "a triggered order cancelled becomes Cancelled",
    "a triggered order sent to the book becomes New",
]

ILLEGAL = [
    (status, happening)
    for status, happening in itertools.product(OrderStatus, Happening)
    if (status, happening) not in TRANSITIONS
]
FINAL = [S.FILLED, S.CANCELLED, S.REJECTED, S.DEACTIVATED]


@pytest.mark.parametrize(("status", "happening", "after"), LEGAL, ids=LEGAL_IDS)
def test_legal_transition(status: OrderStatus, happening: Happening, after: OrderStatus) -> None:
    # Act / Assert
    assert next_status(status, happening) is after


def test_table_holds_exactly_the_legal_transitions() -> None:
    # Act
    table = {(status, happening): after for status, happening, after in LEGAL}

    # Assert
    assert table == TRANSITIONS


@pytest.mark.parametrize(
    ("status", "happening"),
    ILLEGAL,
    ids=[f"{happening.name} on a {status.name} order" for status, happening in ILLEGAL],
)
def test_illegal_transition_raises_invariant_violation(
    status: OrderStatus, happening: Happening
) -> None:
    # Act
    with pytest.raises(InvariantViolation) as bug:
        next_status(status, happening)

    # Assert
    assert isinstance(bug.value, PerpxBug)
    assert happening.name in str(bug.value) and status.name in str(bug.value)


@pytest.mark.parametrize("status", FINAL, ids=[status.name for status in FINAL])
def test_final_status_has_no_way_out(status: OrderStatus) -> None:
    # Act
    exits = [happening for happening in Happening if (status, happening) in TRANSITIONS]

    # Assert
    assert exits == []
