"""Exceptions out of the core are bugs: a broken invariant stops the engine."""

from __future__ import annotations


class PerpxBug(Exception):
    """A defect in perpx itself; never raised for a user's mistake."""


class InvariantViolation(PerpxBug):
    """A rule the state must always satisfy was broken."""
