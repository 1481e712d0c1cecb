"""The order lifecycle: one table of (status, happening) -> status; anything else is a bug.

The core moves its orders through it, and the store's order projector moves its records through
the same table as it reads the core's events, so the two cannot tell different stories.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

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
        # A record's status may be a plain int (the store keeps ints): name it all the same.
        raise InvariantViolation(
            f"next_status: {Happening(happening).name} is illegal for an order in status "
            f"{OrderStatus(status).name}"
        )


_S = OrderStatus
_H = Happening

TRANSITIONS: Final = TransitionTable({
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


def after_row(happening: Happening) -> dict[OrderStatus, OrderStatus]:
    """Return `TRANSITIONS` for one happening, as a dict by status (absent: illegal).

    For the matcher and the cancel path, which move an order per fill or cancel: a status
    found by identity in a small dict costs a fraction of building a (status, happening)
    key, hashing it and comparing it with the table's (issue #14). Derived from the table,
    never written.
    """
    return {status: after for (status, h), after in TRANSITIONS.items() if h is happening}


def advance(row: dict[OrderStatus, OrderStatus], status: OrderStatus,
            happening: Happening) -> OrderStatus:
    """Return the status after `happening` by its `after_row`; an illegal pair raises.

    The table itself names an illegal pair (`TransitionTable.__missing__`).
    """
    after = row.get(status)
    return after if after is not None else TRANSITIONS[status, happening]


# Where an order starts: a plain order as New, a conditional order (or TP/SL leg) Untriggered.
START: Final = _S.NEW
START_CONDITIONAL: Final = _S.UNTRIGGERED

# The statuses with no way out of the table: the order is done (Rejected is never entered).
FINAL: Final = frozenset(status for status in OrderStatus
                  if not any(source is status for source, _ in TRANSITIONS))


def next_status(status: OrderStatus | int, happening: Happening) -> OrderStatus:
    """Return the status after `happening`; an illegal pair is a bug in the engine.

    A status kept as an int (the store keeps ints) is named first: the table's keys are typed,
    and a compiled core checks the type of a key, not only its hash.
    """
    return TRANSITIONS[OrderStatus(status), happening]


def fill_happening(filled_lots: int, qty_lots: int) -> Happening:
    """Return what a fill is to an order that has now `filled_lots` of `qty_lots`."""
    return Happening.FULL_FILL if filled_lots >= qty_lots else Happening.PARTIAL_FILL
