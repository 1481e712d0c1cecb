"""The lifecycle table's per-happening rows (`after_row`, `advance`) against the table itself."""

from __future__ import annotations

import pytest

from perpx.core.enums import OrderStatus
from perpx.core.errors import InvariantViolation
from perpx.core.lifecycle import TRANSITIONS, Happening, advance, after_row


@pytest.mark.parametrize("happening", list(Happening))
@pytest.mark.parametrize("status", list(OrderStatus))
def test_advance_by_row_is_the_table(status: OrderStatus, happening: Happening) -> None:
    row = after_row(happening)
    if (status, happening) in TRANSITIONS:
        after = advance(row, status, happening)
        assert after is TRANSITIONS[status, happening]
    else:
        with pytest.raises(InvariantViolation):
            advance(row, status, happening)


def test_a_row_holds_only_table_entries() -> None:
    for happening in Happening:
        legal = {status: after for (status, h), after in TRANSITIONS.items() if h is happening}
        assert after_row(happening) == legal
