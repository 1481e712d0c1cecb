"""The order lifecycle: one table of (status, happening) -> status; anything else is a bug."""

from __future__ import annotations

from enum import IntEnum

from perpx.core.enums import OrderStatus
from perpx.core.errors import InvariantViolation


class Happening(IntEnum):
    """What can happen to an order."""

    PARTIAL_FILL = 1
    FULL_FILL = 2
    CANCEL = 3
    AMEND = 4
    TRIGGER = 5
    DEACTIVATE = 6
    ACCEPT = 7  # a triggered order enters the book's process as a new order


class TransitionTable(dict[tuple[OrderStatus, Happening], OrderStatus]):
    """The table; looking up an illegal pair raises `InvariantViolation`, not KeyError."""

    def __missing__(self, key: tuple[OrderStatus, Happening]) -> OrderStatus:
        status, happening = key
        raise InvariantViolation(
            f"next_status: {happening.name} is illegal for an order in status {status.name}"
        )


_S = OrderStatus
_H = Happening

TRANSITIONS = TransitionTable({
    (_S.NEW, _H.PARTIAL_FILL): _S.PARTIALLY_FILLED,
    (_S.NEW, _H.FULL_FILL): _S.FILLED,
    (_S.NEW, _H.CANCEL): _S.CANCELLED,
    (_S.NEW, _H.AMEND): _S.NEW,
    (_S.PARTIALLY_FILLED, _H.PARTIAL_FILL): _S.PARTIALLY_FILLED,
    (_S.PARTIALLY_FILLED, _H.FULL_FILL): _S.FILLED,
    (_S.PARTIALLY_FILLED, _H.CANCEL): _S.CANCELLED,
    (_S.PARTIALLY_FILLED, _H.AMEND): _S.PARTIALLY_FILLED,
    (_S.UNTRIGGERED, _H.TRIGGER): _S.TRIGGERED,
    (_S.UNTRIGGERED, _H.AMEND): _S.UNTRIGGERED,
    (_S.UNTRIGGERED, _H.DEACTIVATE): _S.DEACTIVATED,
    (_S.TRIGGERED, _H.PARTIAL_FILL): _S.PARTIALLY_FILLED,
    (_S.TRIGGERED, _H.FULL_FILL): _S.FILLED,
    (_S.TRIGGERED, _H.CANCEL): _S.CANCELLED,
    (_S.TRIGGERED, _H.ACCEPT): _S.NEW,
})


def next_status(status: OrderStatus, happening: Happening) -> OrderStatus:
    """Return the status after `happening`; an illegal pair is a bug in the engine."""
    return TRANSITIONS[status, happening]
