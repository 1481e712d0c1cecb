"""Property tests: the margin-call trigger through the ladder's envelope equals the full walk.

`LinearContract.isolated_margin_call_trigger_ticks` computes only the line the ladder's
envelope (`MaintenanceEnvelope`) puts highest at the position (#14). The walks below are the
code it replaced, kept here as the reference: every line's margin-call price rounded toward
the mark, a long keeping the highest, a short the lowest, `first_ticks` included. They must
agree for every input, errors included, over ladders of any shape: the deduction recursion's,
published deductions that break it (non-convex), equal rates, one line, none, rates at or
beyond 100%, and margins of either sign.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from perpx.core.contract import (
    LinearContract,
    MaintenanceEnvelope,
    MaintenanceLine,
    round_liquidation_price,
)
from perpx.core.enums import Side
from perpx.core.errors import PerpxBug, require_positive
from perpx.core.numbers import RATE_ONE
from support.builders import btcusdt

BUY, SELL = Side.BUY, Side.SELL
R = RATE_ONE


def linear_walk(contract: LinearContract, side: Side, entry_value: int, qty: int,
                margin: int, ftc: int, lines: tuple[MaintenanceLine, ...],
                first: int) -> int:
    """The linear trigger as it was: every line, big-int maths, the most adverse kept."""
    function = "isolated_margin_call_price"
    require_positive(function, "qty_lots", qty)
    qa = qty * contract.atoms_per_tick_lot
    trigger = first
    if side is BUY:
        base = entry_value - margin + ftc + 1
        for mmr, deduction in lines:
            mm_factor = R - mmr
            require_positive(function, "1 -/+ MMR", mm_factor)
            price = -((deduction - base) * R // (qa * mm_factor))
            if price > trigger:
                trigger = price
    else:
        base = entry_value + margin - ftc - 1
        for mmr, deduction in lines:
            mm_factor = R + mmr
            require_positive(function, "1 -/+ MMR", mm_factor)
            price = (base + deduction) * R // (qa * mm_factor)
            if price < trigger:
                trigger = price
    return trigger


def per_line_walk(contract: LinearContract, side: Side, entry_value: int, qty: int,
                  margin: int, ftc: int, lines: tuple[MaintenanceLine, ...],
                  first: int) -> int:
    """The trigger by its definition: each line's fraction, rounded toward the mark."""
    trigger = first
    for mmr, deduction in lines:
        price = round_liquidation_price(side, *contract.isolated_margin_call_price_fraction(
            side, entry_value, qty, margin, ftc, mmr, deduction))
        if (price > trigger) if side is BUY else (price < trigger):
            trigger = price
    return trigger


def outcome(call: object, *args: object) -> int | str:
    """The trigger, or the refusal's message: both must agree."""
    try:
        return call(*args)  # type: ignore[operator, no-any-return]
    except PerpxBug as refusal:
        return str(refusal)


sides = st.sampled_from([BUY, SELL])
# Rates mostly in a ladder's range, sometimes at or beyond 100% either way (refused or
# walked); deductions of either sign, some far beyond the recursion's.
rates = st.one_of(st.integers(0, 20_000_000), st.integers(-2 * R, 2 * R))
deductions = st.one_of(st.integers(0, 10**12), st.integers(-10**16, 10**16))


@st.composite
def ladders(draw: st.DrawFn) -> tuple[MaintenanceLine, ...]:
    """A ladder: by the deduction recursion (convex), published (anything), or rates tied."""
    kind = draw(st.sampled_from(["recursion", "free", "ties"]))
    size = draw(st.integers(0, 40))
    if kind == "recursion":
        lines: list[MaintenanceLine] = []
        mmr = draw(st.integers(0, 2_000_000))
        deduction = 0
        limit = 0
        for _ in range(size):
            lines.append((mmr, deduction))
            limit += draw(st.integers(1, 10**14))
            step = draw(st.integers(0, 1_000_000))
            deduction += limit * step // R + draw(st.integers(-5, 5))  # published rounding
            mmr += step
        return tuple(lines)
    if kind == "ties":
        few = draw(st.lists(st.integers(0, 5_000_000), min_size=1, max_size=3))
        return tuple((draw(st.sampled_from(few)), draw(deductions)) for _ in range(size))
    return tuple((draw(rates), draw(deductions)) for _ in range(size))


positions = dict(
    side=sides, atoms_per_tick_lot=st.integers(1, 10**8), qty=st.integers(-2, 10**7),
    entry_value=st.integers(1, 10**18),
    margin=st.one_of(st.integers(-10**14, 10**16), st.integers(-10**19, 10**19)),
    ftc=st.integers(0, 10**12), first=st.integers(-10**19, 10**19), ladder=ladders())


@settings(max_examples=1500)
@given(**positions)
@example(side=BUY, atoms_per_tick_lot=1, qty=1, entry_value=1, margin=0, ftc=0, first=0,
         ladder=())
@example(side=SELL, atoms_per_tick_lot=1, qty=0, entry_value=1, margin=0, ftc=0, first=0,
         ladder=((R, 0),))
def test_linear_trigger_equals_the_walk_over_every_line(
        side: Side, atoms_per_tick_lot: int, qty: int, entry_value: int, margin: int,
        ftc: int, first: int, ladder: tuple[MaintenanceLine, ...]) -> None:
    contract = LinearContract(atoms_per_tick_lot)
    envelope = MaintenanceEnvelope(ladder)
    expected = outcome(linear_walk, contract, side, entry_value, qty, margin, ftc, ladder,
                       first)
    assert outcome(contract.isolated_margin_call_trigger_ticks, side, entry_value, qty,
                   margin, ftc, envelope, first) == expected
    # The written-out walk was itself each line's fraction, rounded.
    assert outcome(per_line_walk, contract, side, entry_value, qty, margin, ftc, ladder,
                   first) == expected or isinstance(expected, str)


@given(side=sides, qty=st.integers(1, 10**6), entry_value=st.integers(1, 10**17),
       margin=st.integers(-10**15, 10**15), ftc=st.integers(0, 10**10),
       first=st.integers(-10**9, 10**9))
def test_a_real_ladder_through_the_spec_equals_the_walk(
        side: Side, qty: int, entry_value: int, margin: int, ftc: int, first: int) -> None:
    # BTCUSDT's own ladder, through the envelope the spec builds once.
    spec = btcusdt()
    contract = spec.contract
    assert isinstance(contract, LinearContract)
    assert contract.isolated_margin_call_trigger_ticks(
        side, entry_value, qty, margin, ftc, spec.maintenance_envelope, first) == linear_walk(
        contract, side, entry_value, qty, margin, ftc, spec.maintenance_envelope.lines, first)


def test_envelope_keeps_only_lines_that_can_be_highest() -> None:
    # Under the recursion every tier's line is highest somewhere; a line dominated by a
    # published deduction, or tied in rate with a higher one, is dropped.
    lines = ((500_000, 0), (1_000_000, 10**9), (1_500_000, 10**15), (1_000_000, 10**12))
    envelope = MaintenanceEnvelope(lines)
    assert envelope.minus.factors == (R - 500_000, R - 1_000_000, R - 1_500_000)
    assert envelope.minus.deductions == (0, 10**9, 10**15)
    assert len(envelope.minus.breaks) == 2
    assert envelope.minus.breaks == tuple(sorted(envelope.minus.breaks))
