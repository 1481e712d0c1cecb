"""Exceptions out of the core are bugs: a broken invariant stops the engine."""

from __future__ import annotations


class PerpxBug(Exception):
    """A defect in perpx itself; never raised for a user's mistake."""


class InvariantViolation(PerpxBug):
    """A rule the state must always satisfy was broken."""


def require_positive(function: str, name: str, value: int) -> None:
    """Raise `PerpxBug` unless `value` is positive.

    A zero size or leverage reaching a formula is a caller's bug, never a user's mistake.
    """
    if value <= 0:
        raise PerpxBug(f"{function}: {name} must be positive, was {value}")
