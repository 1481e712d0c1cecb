"""Unit tests of perpx.core.contract: LinearContract on worked examples, and its identities.

The worked examples are published vectors (tests/data/vectors/public_vectors.json, spec
perp-mechanics.md) on BTCUSDT's scales (tick 0.10 USDT, lot 0.001 BTC). The properties check
that the contract maths agrees, figure for figure, with the linear formulas the core used
before they moved behind `ContractMaths` (written out again below as the reference), and
the identities any contract must keep: open then close realizes the value difference, pieces
release the whole entry value, entry averaging is exact and its display within half a tick.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perpx.convert import to_atoms, to_lots, to_rate, to_ticks
from perpx.core.contract import (
    LINEAR_VALUE_MATHS,
    ContractMaths,
    InverseContract,
    LinearContract,
    MaintenanceEnvelope,
    round_bankruptcy_price,
    round_liquidation_price,
)
from perpx.core.enums import Side
from perpx.core.instruments import ContractType, UnsupportedContractMaths
from perpx.core.numbers import RATE_ONE, div_ceil, div_floor, mul_div_ceil, mul_div_floor
from support.builders import btcusdt

BUY, SELL = Side.BUY, Side.SELL
R = RATE_ONE
BTC = btcusdt()
A = BTC.atoms_per_tick_lot
LINEAR: ContractMaths = BTC.contract  # typed as the interface: mypy checks LinearContract fits

sides = st.sampled_from([BUY, SELL])
leverages = st.integers(100, 10_000).map(lambda hundredths: hundredths * R // 100)  # 1x..100x
fee_rates = st.integers(0, 100_000)  # 0..0.1%
mmrs = st.integers(0, 10_000_000)  # 0..10%
prices = st.integers(1_000, 10_000_000)  # 100 .. 1,000,000 USDT
quantities = st.integers(1, 1_000_000)  # 0.001 .. 1,000 BTC
atoms = st.integers(-10**14, 10**14)


def ticks(text: str) -> int:
    return to_ticks(BTC, text)


def lots(text: str) -> int:
    return to_lots(BTC, text)


# --- the instrument's contract maths ------------------------------------------------------------

def test_each_instrument_gets_its_contract_maths_once_at_construction() -> None:
    assert isinstance(BTC.contract, LinearContract)
    assert BTC.contract.atoms_per_tick_lot == A
    # The legacy `notional_atoms` is the contract's value, bound once (no lookup per call).
    assert BTC.notional_atoms == BTC.contract.value_ceil_atoms


def test_a_replaced_spec_gets_maths_for_its_own_scale() -> None:
    finer = dataclasses.replace(BTC, tick_atoms=BTC.tick_atoms // 10,
                                atoms_per_tick_lot=A // 10)
    assert finer.contract.value_ceil_atoms(7, 3) == 21 * A // 10
    assert finer.notional_atoms(7, 3) == 21 * A // 10


def test_linear_futures_share_the_linear_maths() -> None:
    futures = dataclasses.replace(BTC, contract_type=ContractType.LINEAR_FUTURES,
                                  delivery_time_ms=1_798_185_600_000)
    assert isinstance(futures.contract, LinearContract)


def test_an_inverse_perpetual_gets_the_inverse_maths_never_the_linear() -> None:
    inverse = dataclasses.replace(BTC, contract_type=ContractType.INVERSE_PERPETUAL,
                                  settle_coin="BTC")
    assert isinstance(inverse.contract, InverseContract)
    # lot 0.001 over tick 0.1 in atoms: k = 10**5 * 10**8 / 10**7.
    assert inverse.contract.atoms_ticks_per_lot == 10**6


def test_inverse_futures_get_the_inverse_maths_and_settle_in_the_base_coin() -> None:
    future = dataclasses.replace(BTC, contract_type=ContractType.INVERSE_FUTURES,
                                 settle_coin="BTC", delivery_time_ms=1_798_185_600_000,
                                 delivery_fee_rate=50_000)
    assert isinstance(future.contract, InverseContract) and future.dated
    with pytest.raises(ValueError, match="settles in its base coin"):
        dataclasses.replace(future, settle_coin="USDT")


def test_an_inverse_tick_that_does_not_divide_the_lot_in_atoms_is_refused() -> None:
    with pytest.raises(UnsupportedContractMaths, match="whole number"):
        dataclasses.replace(BTC, contract_type=ContractType.INVERSE_PERPETUAL, settle_coin="BTC",
                            tick_atoms=3 * 10**7, lot_base_e8=10**8,
                            atoms_per_tick_lot=3 * 10**7)


def test_the_contract_is_not_part_of_a_specs_equality() -> None:
    assert btcusdt() == BTC
    assert hash(btcusdt()) == hash(BTC)


# --- worked examples ----------------------------------------------------------------------------

def test_value_of_a_quantity_at_a_price_is_exact_either_way() -> None:
    # 0.25 BTC at 65,000.1 is 16,250.025 USDT; a linear value needs no rounding.
    value = to_atoms("16250.025")
    assert LINEAR.value_floor_atoms(ticks("65000.1"), lots("0.25")) == value
    assert LINEAR.value_ceil_atoms(ticks("65000.1"), lots("0.25")) == value
    assert LINEAR.entry_value_atoms(ticks("65000.1"), lots("0.25")) == value


def test_entry_averaging_on_add_is_the_arithmetic_mean() -> None:
    """Seed 002: 1 BTC at 50,000 then 2 BTC at 60,000: entry 56,666.66.., shown 56,666.7."""
    entry = (LINEAR.entry_value_atoms(ticks("50000"), lots("1"))
             + LINEAR.entry_value_atoms(ticks("60000"), lots("2")))
    assert entry == to_atoms("170000")
    assert LINEAR.average_entry_fraction(entry, lots("3")) == (1_700_000, 3)
    assert LINEAR.average_entry_display_ticks(entry, lots("3")) == ticks("56666.7")


def test_unrealised_and_realised_pnl_of_a_published_round_trip() -> None:
    """Spec §0/§12: a 1 BTC long at 40,000 is up 2,000 at 42,000; a short down as much."""
    entry = LINEAR.entry_value_atoms(ticks("40000"), lots("1"))
    assert LINEAR.unrealised_pnl_atoms(BUY, entry, lots("1"), ticks("42000")) == to_atoms("2000")
    assert LINEAR.unrealised_pnl_atoms(SELL, entry, lots("1"), ticks("42000")) == to_atoms("-2000")
    # Closing 0.4 of it at 42,000 releases 0.4 of the entry value and realises 0.4 x 2,000.
    assert LINEAR.realised_pnl_on_close_atoms(BUY, entry, lots("1"), lots("0.4"),
                                              ticks("42000")) == (to_atoms("800"),
                                                                  to_atoms("16000"))


def test_fees_on_a_fill_and_to_close_v2() -> None:
    """V1/V2: 1 BTC long at 40,000, 50x, f 0.055%: fee to open 22, fee to close 21.56."""
    entry = LINEAR.entry_value_atoms(ticks("40000"), lots("1"))
    fifty_x = 50 * R
    assert LINEAR.fill_fee_atoms(ticks("40000"), lots("1"), to_rate("0.00055")) == to_atoms("22")
    ftc = LINEAR.fee_to_close_atoms(BUY, entry, fifty_x, to_rate("0.00055"))
    assert ftc == to_atoms("21.56")
    # MM = 40,000 x 0.5% - 0 + 21.56 = 221.56 (V2).
    assert LINEAR.maintenance_margin_atoms(entry, to_rate("0.005"), 0, ftc) == to_atoms("221.56")
    assert LINEAR.initial_margin_atoms(entry, fifty_x) == to_atoms("800")


def test_order_cost_and_quantity_for_cost_v15() -> None:
    """V15: 1 BTC long at 50,000, 10x, 0.06%: 5,000 + 30 + 27 = 5,057; the cost buys 1 BTC."""
    value = LINEAR.value_ceil_atoms(ticks("50000"), lots("1"))
    ten_x, rate = 10 * R, to_rate("0.0006")
    assert LINEAR.order_cost_atoms(BUY, value, ten_x, rate) == to_atoms("5057")
    assert LINEAR.position_margin_atoms(BUY, value, ten_x, rate) == to_atoms("5027")
    assert LINEAR.qty_for_cost_lots(BUY, ticks("50000"), to_atoms("5057"), ten_x,
                                    rate) == lots("1")
    assert LINEAR.qty_for_cost_lots(BUY, ticks("50000"), to_atoms("5056.99"), ten_x,
                                    rate) == lots("0.999")


def test_bankruptcy_price_v13() -> None:
    """V13: a long at 60,000 and 50x goes bankrupt at 58,800 (a short at 61,200)."""
    assert LINEAR.bankruptcy_price_ticks(BUY, ticks("60000"), 50 * R) == ticks("58800")
    assert LINEAR.bankruptcy_price_ticks(SELL, ticks("60000"), 50 * R) == ticks("61200")
    entry = LINEAR.entry_value_atoms(ticks("60000"), lots("1"))
    # The same from the margin it holds: IM 1,200.
    assert LINEAR.bankruptcy_price_for_margin_ticks(BUY, entry, lots("1"),
                                                    to_atoms("1200")) == ticks("58800")


def test_uta_isolated_liquidation_price_v1() -> None:
    """V1: EP 40,000, 1 BTC, 50x, extra 3,000, MMR 0.5%, f 0.055% -> LP 36,380.25 (rounded up
    from 36,380.2503..)."""
    entry = LINEAR.entry_value_atoms(ticks("40000"), lots("1"))
    numerator, denominator = LINEAR.isolated_liquidation_price_fraction(
        BUY, entry, lots("1"), 50 * R, to_atoms("3000"), to_rate("0.005"), 0,
        to_rate("0.00055"))
    assert Fraction(numerator, denominator) * Fraction(BTC.tick_size) == pytest.approx(
        36_380.2503437, abs=1e-6)
    assert round_liquidation_price(BUY, numerator, denominator) == ticks("36380.3")


@pytest.mark.parametrize(
    ("side", "extra", "expected"),
    [(BUY, "0", "19700"), (SELL, "3000", "23300")],
    ids=["V3: old formula, long at 20,000, 50x, MMR 0.5% -> 19,700",
         "V4: the same short with 3,000 extra -> 23,300"],
)
def test_legacy_isolated_liquidation_price_v3_v4(side: Side, extra: str, expected: str) -> None:
    entry = LINEAR.entry_value_atoms(ticks("20000"), lots("1"))
    numerator, denominator = LINEAR.isolated_liquidation_price_legacy_fraction(
        side, entry, lots("1"), 50 * R, to_atoms(extra), to_rate("0.005"), 0)
    assert Fraction(numerator, denominator) == ticks(expected)


def test_order_loss_counts_only_a_loss_against_the_mark() -> None:
    # A buy at 50,100 with the mark at 50,000 would lose 100 per BTC; a sell there loses none.
    assert LINEAR.order_loss_atoms(BUY, ticks("50000"), ticks("50100"),
                                   lots("2")) == to_atoms("-200")
    assert LINEAR.order_loss_atoms(SELL, ticks("50000"), ticks("50100"), lots("2")) == 0


def test_loss_limit_and_quantity_for_value_round_toward_safety() -> None:
    # 2 BTC may lose 150.05 USDT: 75.025 per BTC, i.e. 750.25 ticks, so 750 ticks away.
    assert LINEAR.loss_limit_price_ticks(BUY, lots("2"), ticks("50000"),
                                         to_atoms("150.05")) == ticks("49925")
    assert LINEAR.loss_limit_price_ticks(SELL, lots("2"), ticks("50000"),
                                         to_atoms("150.05")) == ticks("50075")
    # 100.01 USDT at 50,000 needs 0.0020002 BTC: 3 lots (rounded up).
    assert LINEAR.qty_for_value_lots(ticks("50000"), to_atoms("100.01")) == 3


def test_value_only_maths_is_independent_of_the_tick_scale() -> None:
    value = to_atoms("50000")
    assert (LINEAR_VALUE_MATHS.fee_to_close_atoms(BUY, value, 10 * R, 55_000)
            == LINEAR.fee_to_close_atoms(BUY, value, 10 * R, 55_000))


# --- the contract maths agrees with the linear formulas it replaced --------------------------
# The reference: the formulas as calc.py and liqprice.py wrote them inline before #14, with
# ``value = P * q * a``.

def _value(price: int, qty: int) -> int:
    return price * qty * A


@given(side=sides, price=prices, mark=prices, qty=quantities, entry_value=st.integers(1, 10**17),
       leverage=leverages, fee=fee_rates, margin=atoms)
def test_values_pnl_fees_and_prices_agree_with_the_inline_formulas(
        side: Side, price: int, mark: int, qty: int, entry_value: int, leverage: int,
        fee: int, margin: int) -> None:
    s = side.sign
    assert LINEAR.value_floor_atoms(price, qty) == _value(price, qty)
    assert LINEAR.value_ceil_atoms(price, qty) == _value(price, qty)
    assert LINEAR.entry_value_atoms(price, qty) == _value(price, qty)
    assert LINEAR.unrealised_pnl_atoms(side, entry_value, qty, mark) == s * (
        _value(mark, qty) - entry_value)
    assert LINEAR.order_loss_atoms(side, mark, price, qty) == min(0, s * _value(mark - price, qty))
    assert LINEAR.fill_fee_atoms(price, qty, fee) == div_ceil(_value(price, qty) * fee, R)
    assert LINEAR.fee_to_close_atoms(side, entry_value, leverage, fee) == div_ceil(
        entry_value * (leverage - s * R) * fee, leverage * R)
    assert LINEAR.bankruptcy_price_ticks(side, price, leverage) == round_bankruptcy_price(
        side, price * (leverage - s * R), leverage)
    assert LINEAR.bankruptcy_price_for_margin_ticks(
        side, entry_value, qty, margin) == round_bankruptcy_price(
        side, entry_value - s * margin, qty * A)
    assert LINEAR.loss_limit_price_ticks(side, qty, price, abs(margin)) == (
        price - s * div_floor(abs(margin), qty * A))
    assert LINEAR.qty_for_value_lots(price, abs(margin)) == div_ceil(abs(margin), price * A)
    value = _value(price, qty)
    im = div_ceil(value * R, leverage)
    ftc = div_ceil(value * (leverage - s * R) * fee, leverage * R)
    assert LINEAR.position_margin_atoms(side, value, leverage, fee) == im + ftc
    assert LINEAR.order_cost_atoms(side, value, leverage, fee) == (
        im + ftc + div_ceil(value * fee, R))


@given(side=sides, price=prices, qty=quantities, entry_value=st.integers(1, 10**17),
       leverage=leverages, fee=fee_rates, mmr=mmrs, ded=st.integers(0, 10**12),
       extra=st.integers(-10**11, 10**12), margin=atoms, ftc=st.integers(0, 10**10),
       balance=atoms)
def test_liquidation_prices_agree_with_the_inline_formulas(
        side: Side, price: int, qty: int, entry_value: int, leverage: int, fee: int, mmr: int,
        ded: int, extra: int, margin: int, ftc: int, balance: int) -> None:
    s = side.sign
    fee_factor, mm_factor = R - s * fee, R - s * mmr
    assert LINEAR.isolated_liquidation_price_fraction(
        side, entry_value, qty, leverage, extra, mmr, ded, fee) == (
        (entry_value * (leverage - s * R) * fee_factor - s * extra * R * leverage
         - s * ded * leverage * fee_factor) * R,
        qty * A * mm_factor * leverage * fee_factor)
    assert LINEAR.isolated_liquidation_price_legacy_fraction(
        side, entry_value, qty, leverage, extra, mmr, ded) == (
        entry_value * (leverage * R - s * R * R + s * leverage * mmr)
        - s * (ded + extra) * leverage * R,
        qty * A * leverage * R)
    assert LINEAR.isolated_margin_call_price_fraction(
        side, entry_value, qty, margin, ftc, mmr, ded) == (
        (entry_value - s * (margin - ftc + ded - 1)) * R, qty * A * mm_factor)
    unit = qty * A
    assert LINEAR.cross_liquidation_price_estimate_ticks(
        side, qty, price, balance, ftc, mmr) == round_liquidation_price(
        side, price * unit * mm_factor - s * (balance - ftc) * R, unit * mm_factor)
    assert LINEAR.cross_liquidation_price_legacy_ticks(
        side, price, qty, balance, ftc, ded) == round_liquidation_price(
        side, price * unit - s * (balance + ftc - ded), unit)


@given(side=sides, qty=quantities, entry_value=st.integers(1, 10**17), margin=atoms,
       ftc=st.integers(0, 10**10), first=st.integers(-10**9, 10**9),
       mmrs_=st.lists(mmrs, max_size=40), deds=st.lists(st.integers(0, 10**12), max_size=40))
def test_margin_call_trigger_is_every_lines_fraction_rounded_toward_the_mark(
        side: Side, qty: int, entry_value: int, margin: int, ftc: int, first: int,
        mmrs_: list[int], deds: list[int]) -> None:
    # The written-out loop equals the per-line fraction rounded as a liquidation price, the
    # long's highest and the short's lowest (BTCUSDT's own ladder included).
    lines = tuple(zip(mmrs_, deds, strict=False))
    for ladder in (lines, BTC.maintenance_envelope.lines):
        expected = first
        for mmr, deduction in ladder:
            price = round_liquidation_price(side, *LINEAR.isolated_margin_call_price_fraction(
                side, entry_value, qty, margin, ftc, mmr, deduction))
            expected = max(expected, price) if side is BUY else min(expected, price)
        assert LINEAR.isolated_margin_call_trigger_ticks(
            side, entry_value, qty, margin, ftc, MaintenanceEnvelope(ladder), first) == expected


@given(side=sides, price=prices, leverage=leverages, fee=fee_rates,
       cost=st.integers(0, 10**15))
def test_quantity_for_cost_is_the_largest_that_fits(
        side: Side, price: int, leverage: int, fee: int, cost: int) -> None:
    qty = LINEAR.qty_for_cost_lots(side, price, cost, leverage, fee)
    def cost_of(lots_: int) -> int:
        return LINEAR.order_cost_atoms(side, _value(price, lots_), leverage, fee)
    assert qty >= 0
    if qty:
        assert cost_of(qty) <= cost
    assert cost_of(qty + 1) > cost


# --- identities any contract keeps ---------------------------------------------------------

@given(side=sides, entry=prices, exit_=prices, qty=quantities)
def test_open_then_close_realises_the_value_difference(
        side: Side, entry: int, exit_: int, qty: int) -> None:
    entry_value = LINEAR.entry_value_atoms(entry, qty)
    pnl, released = LINEAR.realised_pnl_on_close_atoms(side, entry_value, qty, qty, exit_)
    assert released == entry_value
    assert pnl == side.sign * (LINEAR.value_floor_atoms(exit_, qty)
                               - LINEAR.value_floor_atoms(entry, qty))
    # ... which is the unrealised P&L at the exit price.
    assert pnl == LINEAR.unrealised_pnl_atoms(side, entry_value, qty, exit_)


@given(side=sides, data=st.data(), fills=st.lists(st.tuples(prices, quantities), min_size=1,
                                                  max_size=6))
def test_closing_in_pieces_releases_the_whole_entry_value_rounded_for_the_exchange(
        side: Side, data: st.DataObject, fills: list[tuple[int, int]]) -> None:
    entry_value = sum(LINEAR.entry_value_atoms(p, q) for p, q in fills)
    held = sum(q for _, q in fills)
    remaining_value, remaining_qty, total_pnl, total_exit = entry_value, held, 0, 0
    while remaining_qty:
        piece = data.draw(st.integers(1, remaining_qty))
        exit_price = data.draw(prices)
        pnl, released = LINEAR.realised_pnl_on_close_atoms(side, remaining_value, remaining_qty,
                                                           piece, exit_price)
        exact = Fraction(remaining_value * piece, remaining_qty)
        # A long releases at least its share (less P&L), a short at most (less P&L).
        assert (released >= exact) if side is BUY else (released <= exact)
        assert released == (mul_div_ceil if side is BUY else mul_div_floor)(
            remaining_value, piece, remaining_qty)
        total_pnl += pnl
        total_exit += LINEAR.value_floor_atoms(exit_price, piece)
        remaining_value -= released
        remaining_qty -= piece
    assert remaining_value == 0
    assert total_pnl == side.sign * (total_exit - entry_value)


@given(fills=st.lists(st.tuples(prices, quantities), min_size=1, max_size=8))
def test_entry_averaging_is_exact_and_shown_within_half_a_tick(
        fills: list[tuple[int, int]]) -> None:
    entry_value = sum(LINEAR.entry_value_atoms(p, q) for p, q in fills)
    held = sum(q for _, q in fills)
    numerator, denominator = LINEAR.average_entry_fraction(entry_value, held)
    exact = Fraction(sum(p * q for p, q in fills), held)  # sum q_i p_i / sum q_i (spec §12)
    assert Fraction(numerator, denominator) == exact
    assert denominator > 0 and Fraction(numerator, denominator).denominator == denominator
    shown = LINEAR.average_entry_display_ticks(entry_value, held)
    # Half up: within half a tick, and a tie goes up.
    assert exact - Fraction(1, 2) < shown <= exact + Fraction(1, 2)
    assert min(p for p, _ in fills) <= shown <= max(p for p, _ in fills)


@given(side=sides, entry=prices, qty=quantities, leverage=leverages)
def test_the_bankruptcy_price_is_where_the_initial_margin_is_lost(
        side: Side, entry: int, qty: int, leverage: int) -> None:
    """At the bankruptcy price the loss covers the IM (rounded away from the mark: at most one
    tick per lot beyond it, never short of it)."""
    entry_value = LINEAR.entry_value_atoms(entry, qty)
    im_exact = Fraction(entry_value * R, leverage)
    bust = LINEAR.bankruptcy_price_ticks(side, entry, leverage)
    loss = -LINEAR.unrealised_pnl_atoms(side, entry_value, qty, bust)
    assert im_exact <= loss < im_exact + qty * A


# Around each power of two, for the i64 paths of `fee_to_close_atoms` (`mul`, `mul_div_ceil`).
def _near_powers(max_bits: int) -> st.SearchStrategy[int]:
    return st.builds(lambda bits, delta: max(1, (1 << bits) + delta),
                     st.integers(0, max_bits), st.integers(-2, 2))


@given(side=sides,
       entry_value=st.one_of(_near_powers(70), st.integers(0, 2**70),
                             _near_powers(70).map(lambda v: -v)),
       leverage=st.one_of(_near_powers(40), st.integers(1, 2**40),
                          st.sampled_from([R, R + 1, R - 1, 10 * R, 100 * R, 2**35, 2**35 - 1])),
       fee=st.one_of(st.integers(-R, R), _near_powers(30), _near_powers(30).map(lambda f: -f)))
def test_linear_fee_to_close_equals_the_exact_formula_over_wide_ranges(
        side: Side, entry_value: int, leverage: int, fee: int) -> None:
    assert LINEAR.fee_to_close_atoms(side, entry_value, leverage, fee) == div_ceil(
        entry_value * (leverage - side.sign * R) * fee, leverage * R)


wide_atoms = st.one_of(_near_powers(66), _near_powers(66).map(lambda v: -v),
                       st.integers(-(2**66), 2**66))
wide_mmrs = st.one_of(st.integers(0, R - 1), st.sampled_from([0, 1, R // 3, 2**25, R - 2**26,
                                                              R - 2**26 - 1, R - 1]))


@given(side=sides, qty=st.one_of(quantities, _near_powers(24)), entry_value=wide_atoms,
       margin=wide_atoms, ftc=st.integers(0, 10**10), mmr=wide_mmrs, ded=wide_atoms,
       mark=st.one_of(prices, _near_powers(40)))
def test_margin_call_trigger_and_cross_estimate_equal_the_exact_formulas_over_wide_ranges(
        side: Side, qty: int, entry_value: int, margin: int, ftc: int, mmr: int, ded: int,
        mark: int) -> None:
    # Their i64 paths (`mul_div_floor` of x*R/m, then // q*a) at and past a machine word.
    s = side.sign
    mm_factor = R - s * mmr
    first = mark if side is BUY else -mark
    price = round_liquidation_price(side, *LINEAR.isolated_margin_call_price_fraction(
        side, entry_value, qty, margin, ftc, mmr, ded))
    expected = max(first, price) if side is BUY else min(first, price)
    assert LINEAR.isolated_margin_call_trigger_ticks(
        side, entry_value, qty, margin, ftc, MaintenanceEnvelope(((mmr, ded),)), first) == expected
    unit = qty * A
    assert LINEAR.cross_liquidation_price_estimate_ticks(
        side, qty, mark, margin, ded, mmr) == round_liquidation_price(
        side, mark * unit * mm_factor - s * (margin - ded) * R, unit * mm_factor)


@given(side=sides, mark=st.one_of(prices, _near_powers(40)),
       price=st.one_of(prices, _near_powers(40)),
       qty=st.one_of(quantities, st.integers(-10, 0), _near_powers(30)), entry_value=wide_atoms)
def test_unrealised_pnl_and_order_loss_equal_the_signed_formulas_for_any_inputs(
        side: Side, mark: int, price: int, qty: int, entry_value: int) -> None:
    # Negated instead of multiplied by the sign; equal for every integer, even a bad quantity.
    s = side.sign
    assert LINEAR.unrealised_pnl_atoms(side, entry_value, qty, mark) == s * (
        mark * qty * A - entry_value)
    assert LINEAR.order_loss_atoms(side, mark, price, qty) == min(0, s * (mark - price) * qty * A)
