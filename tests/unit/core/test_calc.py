"""Unit tests of perpx.core.calc: each formula, its rounding direction, and its properties."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perpx.convert import to_atoms, to_lots, to_rate, to_ticks
from perpx.core.calc import (
    HedgeMargins,
    average_entry_display,
    average_entry_price_ticks,
    closed_pnl_atoms,
    fee_atoms,
    fee_to_close_atoms,
    fee_to_close_for_entry_value_atoms,
    hedge_im_mm_atoms,
    initial_margin_atoms,
    maintenance_margin_at_rate_atoms,
    maintenance_margin_atoms,
    mm_deduction_ladder_atoms,
    order_cost_atoms,
    order_loss_atoms,
    position_value_atoms,
    qty_for_cost_lots,
    realized_pnl_on_close_atoms,
    roi_rate,
    tier_for_position,
    unrealized_pnl_atoms,
)
from perpx.core.enums import Side
from perpx.core.errors import PerpxBug
from perpx.core.instruments import RiskLimitTier
from perpx.core.liqprice import (
    bankruptcy_price_for_margin_ticks,
    bankruptcy_price_ticks,
    cross_liquidation_price_estimate_ticks,
    cross_liquidation_price_legacy_ticks,
    isolated_liquidation_price_fraction,
    isolated_liquidation_price_legacy_fraction,
    isolated_liquidation_price_legacy_ticks,
    isolated_liquidation_price_ticks,
    isolated_liquidation_price_with_tier,
    round_bankruptcy_price,
    round_liquidation_price,
)
from perpx.core.numbers import RATE_ONE
from support.builders import btcusdt

BUY, SELL = Side.BUY, Side.SELL
R = RATE_ONE
BTC = btcusdt()
A = BTC.atoms_per_tick_lot  # 10,000 atoms: 0.1 USDT x 0.001 BTC
TICK = Fraction(BTC.tick_size)
LOT = Fraction(BTC.qty_step)
ATOM = Fraction(1, 10**8)
F_T = BTC.taker_fee_rate

sides = st.sampled_from([BUY, SELL])
leverages = st.integers(100, 10_000).map(lambda hundredths: hundredths * R // 100)  # 1x..100x
fee_rates = st.integers(0, 100_000)  # 0..0.1%
prices = st.integers(1_000, 10_000_000)  # 100 .. 1,000,000 USDT
quantities = st.integers(1, 1_000_000)  # 0.001 .. 1,000 BTC


def usdt(text: str) -> int:
    return to_atoms(text)


# --- values, margins, fees -----------------------------------------------------------------

def test_position_value_is_price_times_quantity_in_atoms() -> None:
    value = position_value_atoms(BTC, to_ticks(BTC, "65000.1"), to_lots(BTC, "0.25"))
    assert value == usdt("16250.025")


@pytest.mark.parametrize(
    ("value", "leverage", "expected"),
    [(10, 3 * R, 4), (9, 3 * R, 3), (1, 100 * R, 1), (0, 10 * R, 0)],
    ids=["10 atoms at 3x need 4 atoms of IM, rounded up from 3.33",
         "9 atoms at 3x need exactly 3",
         "1 atom at 100x still needs 1 atom",
         "nothing needs nothing"],
)
def test_initial_margin_rounds_up(value: int, leverage: int, expected: int) -> None:
    assert initial_margin_atoms(value, leverage) == expected


@pytest.mark.parametrize(
    ("value", "rate", "expected"),
    [(1, 55_000, 1), (100_000_000, 55_000, 55_000), (100_001, -20_000, -20),
     (99_999, -20_000, -19)],
    ids=["a fee on 1 atom at 0.055% is 1 atom, rounded up",
         "a fee on 1 USDT at 0.055% is exact",
         "a maker rebate of -20.0002 atoms rounds to the smaller rebate 20",
         "a rebate of -19.9998 atoms rounds to 19"],
)
def test_fee_rounds_up_and_rebates_round_toward_zero(value: int, rate: int, expected: int) -> None:
    assert fee_atoms(value, rate) == expected


def test_fee_to_close_is_the_taker_fee_at_the_unrounded_bankruptcy_price() -> None:
    # 1 lot at 3 ticks and 3x: BP = 2 ticks (long), 4 (short); value 2 x A and 4 x A.
    long_ftc = fee_to_close_atoms(BTC, BUY, 3, 1, 3 * R, F_T)
    short_ftc = fee_to_close_atoms(BTC, SELL, 3, 1, 3 * R, F_T)
    assert long_ftc == fee_atoms(2 * A, F_T) == 11  # 20,000 x 0.00055 = 11
    assert short_ftc == fee_atoms(4 * A, F_T) == 22


def test_fee_to_close_rounds_up_once_on_the_exact_product() -> None:
    # 1 lot at 1 tick, 3x long: 10,000 x 2/3 x 0.00055 = 3.666.. atoms -> 4.
    assert fee_to_close_atoms(BTC, BUY, 1, 1, 3 * R, F_T) == 4
    assert fee_to_close_for_entry_value_atoms(BUY, A, 3 * R, F_T) == 4


def test_order_cost_is_the_sum_of_its_rounded_up_parts() -> None:
    value = position_value_atoms(BTC, 1, 1)
    expected = (initial_margin_atoms(value, 3 * R) + fee_atoms(value, F_T)
                + fee_to_close_atoms(BTC, BUY, 1, 1, 3 * R, F_T))
    assert order_cost_atoms(BTC, BUY, 1, 1, 3 * R, F_T) == expected == 3334 + 6 + 4


@given(side=sides, price=prices, qty=quantities, leverage=leverages, fee=fee_rates)
def test_order_cost_is_at_least_the_initial_margin_plus_the_fee_to_open(
        side: Side, price: int, qty: int, leverage: int, fee: int) -> None:
    value = position_value_atoms(BTC, price, qty)
    cost = order_cost_atoms(BTC, side, price, qty, leverage, fee)
    assert cost >= initial_margin_atoms(value, leverage) + fee_atoms(value, fee)


@given(side=sides, price=prices, cost=st.integers(0, 10**16), leverage=leverages, fee=fee_rates)
def test_quantity_for_cost_is_the_largest_that_fits(
        side: Side, price: int, cost: int, leverage: int, fee: int) -> None:
    qty = qty_for_cost_lots(BTC, side, price, cost, leverage, fee)
    assert qty >= 0
    assert order_cost_atoms(BTC, side, price, qty, leverage, fee) <= cost
    assert order_cost_atoms(BTC, side, price, qty + 1, leverage, fee) > cost


def test_quantity_for_a_non_positive_cost_is_zero() -> None:
    assert qty_for_cost_lots(BTC, BUY, 500_000, 0, 10 * R, F_T) == 0
    assert qty_for_cost_lots(BTC, SELL, 500_000, -5, 10 * R, F_T) == 0


# --- tiers and maintenance margin ----------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "tier_id"),
    [(0, 1), (usdt("2000000"), 1), (usdt("2000000") + 1, 2), (usdt("1200000000"), 35),
     (usdt("1200000000") + 1, 35), (usdt("99999999999"), 35)],
    ids=["no position is tier 1", "the tier-1 cap itself is tier 1 (inclusive)",
         "one atom above the cap is tier 2", "the last cap is the last tier",
         "one atom beyond the last cap still uses the last tier",
         "far beyond the ladder still uses the last tier"],
)
def test_tier_for_position(value: int, tier_id: int) -> None:
    assert tier_for_position(BTC, value).tier_id == tier_id


def test_maintenance_margin_rounds_the_rate_part_up() -> None:
    # 1 atom at 0.5%: 0.005 atoms -> 1.
    assert maintenance_margin_at_rate_atoms(1, 500_000, 0, 0) == 1
    assert maintenance_margin_atoms(BTC, 1, 7) == 8


def test_maintenance_margin_beyond_the_ladder_uses_the_last_tier() -> None:
    last = BTC.risk_tiers[-1]
    value = last.limit_atoms * 2
    expected = maintenance_margin_at_rate_atoms(value, last.mmr, last.mm_deduction_atoms, 0)
    assert maintenance_margin_atoms(BTC, value, 0) == expected


def test_maintenance_margin_is_continuous_across_a_tier_boundary() -> None:
    cap = BTC.risk_tiers[0].limit_atoms
    assert maintenance_margin_atoms(BTC, cap + 1, 0) - maintenance_margin_atoms(BTC, cap, 0) <= 1


def test_deduction_ladder_rounds_down() -> None:
    tiers = [RiskLimitTier(1, 3, 10, 20, 100 * R, 0), RiskLimitTier(2, 10, 50_000_001, 0, R, 0)]
    # 3 atoms x 0.50000001 - 10**-7 = 1.49999.. atoms -> 1 (a smaller deduction, a larger MM).
    assert mm_deduction_ladder_atoms(tiers) == (0, 1)
    assert mm_deduction_ladder_atoms([]) == ()


# --- rounding of prices --------------------------------------------------------------------

@pytest.mark.parametrize(
    ("side", "liquidation", "bankruptcy"),
    [(BUY, 11, 10), (SELL, 10, 11)],
    ids=["a long's LP 10.5 rounds up toward the mark and its BP down away from it",
         "a short's LP 10.5 rounds down toward the mark and its BP up away from it"],
)
def test_price_rounding_directions(side: Side, liquidation: int, bankruptcy: int) -> None:
    assert round_liquidation_price(side, 21, 2) == liquidation
    assert round_bankruptcy_price(side, 21, 2) == bankruptcy


@pytest.mark.parametrize(
    ("side", "expected"),
    [(BUY, 6667), (SELL, 13335)],
    ids=["a 3x long from 10,001 ticks goes bankrupt at 6,667.33 rounded down to 6,667",
         "a 3x short from 10,001 ticks goes bankrupt at 13,334.67 rounded up to 13,335"],
)
def test_bankruptcy_price_rounds_away_from_the_mark(side: Side, expected: int) -> None:
    assert bankruptcy_price_ticks(BTC, side, 10_001, 3 * R) == expected
    entry_value = position_value_atoms(BTC, 10_001, 1)
    assert bankruptcy_price_for_margin_ticks(BTC, side, entry_value, 1,
                                             entry_value // 3) == expected


def test_bankruptcy_price_for_margin_moves_by_margin_over_size() -> None:
    # 1 BTC long from 10,000 with 1,500 of margin: BP 8,500; the short: 11,500.
    entry_value = position_value_atoms(BTC, 100_000, 1_000)
    assert bankruptcy_price_for_margin_ticks(BTC, BUY, entry_value, 1_000, usdt("1500")) == 85_000
    assert bankruptcy_price_for_margin_ticks(BTC, SELL, entry_value, 1_000,
                                             usdt("1500")) == 115_000


# --- isolated liquidation price ------------------------------------------------------------

def uta_reference(side: Side, entry_ticks: int, qty: int, leverage: int, extra: int, mmr: int,
                  ded: int, fee: int) -> Fraction:
    """Spec §1.4 item 1 in exact decimals (USDT, BTC), converted back to ticks."""
    ep, q = entry_ticks * TICK, qty * LOT
    lev, f, m = Fraction(leverage, R), Fraction(fee, R), Fraction(mmr, R)
    e, d = extra * ATOM, ded * ATOM
    if side is BUY:
        lp = (ep * q - ep * q / lev - e / (1 - f) - d) / (q - q * m)
    else:
        lp = (ep * q + ep * q / lev + e / (1 + f) + d) / (q + q * m)
    return lp / TICK


def legacy_reference(side: Side, entry_ticks: int, qty: int, leverage: int, extra: int, mmr: int,
                     ded: int) -> Fraction:
    """Spec §1.4 item 2 in exact decimals, converted back to ticks."""
    ep, q = entry_ticks * TICK, qty * LOT
    im = q * ep / Fraction(leverage, R)
    mm = q * ep * Fraction(mmr, R) - ded * ATOM
    s = side.sign
    return (ep - s * (im - mm) / q - s * extra * ATOM / q) / TICK


@given(side=sides, entry=prices, qty=quantities, leverage=leverages,
       extra=st.integers(-10**12, 10**14), mmr=st.integers(0, 5_000_000),
       ded=st.integers(0, 10**12), fee=fee_rates)
def test_uta_liquidation_fraction_is_the_published_formula(
        side: Side, entry: int, qty: int, leverage: int, extra: int, mmr: int, ded: int,
        fee: int) -> None:
    numerator, denominator = isolated_liquidation_price_fraction(
        BTC, side, position_value_atoms(BTC, entry, qty), qty, leverage, extra, mmr, ded, fee)
    assert denominator > 0
    assert Fraction(numerator, denominator) == uta_reference(
        side, entry, qty, leverage, extra, mmr, ded, fee)


@given(side=sides, entry=prices, qty=quantities, leverage=leverages,
       extra=st.integers(-10**12, 10**14), mmr=st.integers(0, 5_000_000),
       ded=st.integers(0, 10**12))
def test_legacy_liquidation_fraction_is_the_older_published_formula(
        side: Side, entry: int, qty: int, leverage: int, extra: int, mmr: int,
        ded: int) -> None:
    numerator, denominator = isolated_liquidation_price_legacy_fraction(
        BTC, side, position_value_atoms(BTC, entry, qty), qty, leverage, extra, mmr, ded)
    assert denominator > 0
    assert Fraction(numerator, denominator) == legacy_reference(
        side, entry, qty, leverage, extra, mmr, ded)


def test_uta_liquidation_price_rounds_toward_the_mark() -> None:
    # V1's position: the long's exact LP 36,380.2503 rounds up to 36,380.3.
    inputs = (400_000, 1_000, 50 * R, usdt("3000"), 500_000, 0, F_T)
    long_lp = isolated_liquidation_price_ticks(BTC, BUY, *inputs)
    short_lp = isolated_liquidation_price_ticks(BTC, SELL, *inputs)
    long_exact = uta_reference(BUY, *inputs)
    short_exact = uta_reference(SELL, *inputs)
    assert long_lp == 363_803
    assert long_exact < long_lp < long_exact + 1
    assert short_exact - 1 < short_lp < short_exact


def test_uta_extra_margin_moves_the_price_by_extra_over_one_minus_fee_and_mmr() -> None:
    # §1.5: LP moves by extra / ((1 - f) q (1 - MMR)) under the UTA formula.
    entry_value = position_value_atoms(BTC, 100_000, 1_000)
    before = isolated_liquidation_price_fraction(BTC, BUY, entry_value, 1_000, 20 * R, 0,
                                                 500_000, 0, F_T)
    after = isolated_liquidation_price_fraction(BTC, BUY, entry_value, 1_000, 20 * R,
                                                usdt("1000"), 500_000, 0, F_T)
    move = Fraction(*before) - Fraction(*after)
    f, m = Fraction(F_T, R), Fraction(500_000, R)
    assert move * TICK == Fraction(1000) / ((1 - f) * 1 * (1 - m))


def test_legacy_liquidation_price_without_extra_is_entry_times_one_minus_imr_plus_mmr() -> None:
    lp = isolated_liquidation_price_legacy_ticks(BTC, BUY, 100_000, 1_000, 50 * R, 0, 500_000, 0)
    assert lp == 98_500  # 10,000 x (1 - 0.02 + 0.005)


@given(side=sides, entry=prices, qty=quantities, leverage=leverages, k=st.integers(0, 50),
       extra=st.integers(0, 10**14), fee=fee_rates)
def test_a_long_liquidates_below_entry_and_a_short_above(
        side: Side, entry: int, qty: int, leverage: int, k: int, extra: int, fee: int) -> None:
    # MMR at most half of 1/L, so the position is not born liquidated.
    mmr = R * R // leverage * k // 100
    lp = isolated_liquidation_price_ticks(BTC, side, entry, qty, leverage, extra, mmr, 0, fee)
    if side is BUY:
        assert lp < entry
    else:
        assert lp > entry


@given(entry=prices, leverage=leverages, k=st.integers(0, 50))
def test_the_long_liquidates_before_bankruptcy_and_the_short_too(
        entry: int, leverage: int, k: int) -> None:
    mmr = R * R // leverage * k // 100
    long_lp = isolated_liquidation_price_ticks(BTC, BUY, entry, 1, leverage, 0, mmr, 0, F_T)
    short_lp = isolated_liquidation_price_ticks(BTC, SELL, entry, 1, leverage, 0, mmr, 0, F_T)
    assert bankruptcy_price_ticks(BTC, BUY, entry, leverage) <= long_lp
    assert short_lp <= bankruptcy_price_ticks(BTC, SELL, entry, leverage)


@given(side=sides, entry=prices, qty=quantities, leverage=leverages,
       extra=st.integers(0, 10**14), k=st.integers(0, 50))
def test_the_older_formula_liquidates_before_the_bankruptcy_price_with_extra_margin(
        side: Side, entry: int, qty: int, leverage: int, extra: int, k: int) -> None:
    mmr = R * R // leverage * k // 100
    entry_value = position_value_atoms(BTC, entry, qty)
    margin = initial_margin_atoms(entry_value, leverage) + extra
    lp = isolated_liquidation_price_legacy_ticks(BTC, side, entry, qty, leverage, extra, mmr, 0)
    bp = bankruptcy_price_for_margin_ticks(BTC, side, entry_value, qty, margin)
    assert side.sign * (lp - bp) >= 0


def test_a_long_with_more_margin_than_value_has_a_non_positive_liquidation_price() -> None:
    lp = isolated_liquidation_price_ticks(BTC, BUY, 100_000, 1_000, R, usdt("20000"), 500_000, 0,
                                          F_T)
    assert lp <= 0


@pytest.mark.parametrize(
    "bad",
    [{"qty_lots": 0}, {"leverage": 0}, {"mmr": R}],
    ids=["zero size is a bug", "zero leverage is a bug", "a long MMR of 100% is a bug"],
)
def test_liquidation_price_of_impossible_inputs_is_a_bug(bad: dict[str, int]) -> None:
    args = {"qty_lots": 1_000, "leverage": 10 * R, "mmr": 500_000} | bad
    with pytest.raises(PerpxBug):
        isolated_liquidation_price_ticks(BTC, BUY, 100_000, args["qty_lots"], args["leverage"],
                                         0, args["mmr"], 0, F_T)


# --- tier at the liquidation price (§14 Q4) ------------------------------------------------

@pytest.mark.parametrize(
    ("side", "qty", "tier_at_entry", "tier_at_lp"),
    [(BUY, "41", 2, 1), (SELL, "39", 1, 2), (BUY, "1", 1, 1)],
    ids=["a 10x long of 2.05M in tier 2 liquidates at a value inside tier 1",
         "a 10x short of 1.95M in tier 1 liquidates at a value inside tier 2",
         "a small long stays in tier 1"],
)
def test_liquidation_price_uses_the_tier_at_that_price(
        side: Side, qty: str, tier_at_entry: int, tier_at_lp: int) -> None:
    qty_lots = to_lots(BTC, qty)
    entry_value = position_value_atoms(BTC, 500_000, qty_lots)
    assert tier_for_position(BTC, entry_value).tier_id == tier_at_entry
    lp, tier = isolated_liquidation_price_with_tier(BTC, side, entry_value, qty_lots, 10 * R, 0,
                                                    F_T)
    assert tier.tier_id == tier_at_lp
    assert lp == isolated_liquidation_price_ticks(BTC, side, 500_000, qty_lots, 10 * R, 0, tier.mmr,
                                                  tier.mm_deduction_atoms, F_T)


@given(side=sides, entry=prices, qty=quantities, leverage=st.integers(1, 25).map(lambda v: v * R),
       extra=st.integers(0, 10**14))
def test_only_one_tier_holds_its_own_liquidation_price_up_to_a_shared_boundary(
        side: Side, entry: int, qty: int, leverage: int, extra: int) -> None:
    entry_value = position_value_atoms(BTC, entry, qty)
    lp, tier = isolated_liquidation_price_with_tier(BTC, side, entry_value, qty, leverage, extra,
                                                    F_T)
    consistent = set()
    lower = None
    for candidate in BTC.risk_tiers:
        numerator, denominator = isolated_liquidation_price_fraction(
            BTC, side, entry_value, qty, leverage, extra, candidate.mmr,
            candidate.mm_deduction_atoms, F_T)
        value_at_lp = Fraction(numerator, denominator) * qty * A
        inside = (lower is None or value_at_lp > lower) and (
            candidate is BTC.risk_tiers[-1] or value_at_lp <= candidate.limit_atoms)
        if inside:
            consistent.add(round_liquidation_price(side, numerator, denominator))
            assert candidate.tier_id >= tier.tier_id
        lower = candidate.limit_atoms
    assert consistent == {lp}


# --- cross liquidation price ---------------------------------------------------------------

@given(side=sides, qty=quantities, mark=prices, balance=st.integers(0, 10**15),
       total_mm=st.integers(0, 10**15), mmr=st.integers(0, 10_000_000))
def test_cross_estimate_rounds_toward_the_mark_around_the_exact_root(
        side: Side, qty: int, mark: int, balance: int, total_mm: int, mmr: int) -> None:
    lp = cross_liquidation_price_estimate_ticks(BTC, side, qty, mark, balance, total_mm, mmr)
    assert lp is not None

    def surplus(price: int) -> Fraction:
        move = (price - mark) * qty * A
        return balance - total_mm + side.sign * move - Fraction(move * mmr, R)

    # Long: surplus rises with the price; the rounded-up LP is at or above the root.
    assert surplus(lp) >= 0
    assert surplus(lp - side.sign) < 0


def test_cross_estimate_has_no_price_without_a_position_or_for_a_long_at_full_mmr() -> None:
    assert cross_liquidation_price_estimate_ticks(BTC, BUY, 0, 100_000, 10, 5, 500_000) is None
    assert cross_liquidation_price_estimate_ticks(BTC, BUY, 1, 100_000, 10, 5, R) is None
    assert cross_liquidation_price_estimate_ticks(BTC, SELL, 1, 100_000, 10, 5, R) is not None


def test_cross_estimate_of_an_account_at_its_maintenance_margin_is_the_mark() -> None:
    assert cross_liquidation_price_estimate_ticks(BTC, SELL, 7, 123_456, 99, 99, 500_000) == 123_456


def test_legacy_cross_liquidation_price() -> None:
    lp = cross_liquidation_price_legacy_ticks(BTC, SELL, 200_000, 1_000, usdt("2000"),
                                              usdt("200"), usdt("100"))
    assert lp == 221_000  # 20,000 + 2,100
    assert cross_liquidation_price_legacy_ticks(BTC, SELL, 200_000, 0, 0, 0, 0) is None


# --- hedge mode ----------------------------------------------------------------------------

def test_a_hedge_pair_with_one_empty_side_is_the_one_way_position() -> None:
    qty, price, lev = to_lots(BTC, "0.4"), to_ticks(BTC, "50000"), 10 * R
    value = position_value_atoms(BTC, price, qty)
    for side in (BUY, SELL):
        ftc = fee_to_close_atoms(BTC, side, price, qty, lev, F_T)
        long_qty, short_qty = (qty, 0) if side is BUY else (0, qty)
        margins = hedge_im_mm_atoms(BTC, long_qty, value * (side is BUY), short_qty,
                                    value * (side is SELL), price, lev, F_T)
        one_way = (initial_margin_atoms(value, lev) + ftc,
                   maintenance_margin_atoms(BTC, value, ftc))
        empty = (0, 0)
        expected = one_way + empty if side is BUY else empty + one_way
        assert margins == HedgeMargins(*expected)


def test_a_fully_hedged_pair_costs_the_two_way_fee_reserve_and_literally_one_im_more() -> None:
    qty, price, lev = to_lots(BTC, "1"), to_ticks(BTC, "50000"), 10 * R
    value = position_value_atoms(BTC, price, qty)
    net = hedge_im_mm_atoms(BTC, qty, value, qty, value, price, lev, F_T)
    literal = hedge_im_mm_atoms(BTC, qty, value, qty, value, price, lev, F_T,
                                literal_hedged_first_term=True)
    long_reserve = 2 * fee_to_close_atoms(BTC, BUY, price, qty, lev, F_T)
    short_reserve = 2 * fee_to_close_atoms(BTC, SELL, price, qty, lev, F_T)
    assert net == HedgeMargins(long_reserve, long_reserve, short_reserve, short_reserve)
    # On a tie the long counts as the higher-value side and carries MP x H / L.
    assert literal == HedgeMargins(long_reserve + usdt("5000"), long_reserve, short_reserve,
                                   short_reserve)


def test_the_larger_short_carries_the_net_size() -> None:
    price, lev = to_ticks(BTC, "50000"), 10 * R
    long_qty, short_qty = to_lots(BTC, "0.6"), to_lots(BTC, "1")
    margins = hedge_im_mm_atoms(BTC, long_qty, position_value_atoms(BTC, price, long_qty),
                                short_qty, position_value_atoms(BTC, price, short_qty), price,
                                lev, F_T)
    # Long (lower): 50,000 x 0.6 x 0.9 x 0.00055 x 2 = 29.70.
    assert margins.long_im == margins.long_mm == usdt("29.7")
    # Short (higher): 2,000 + 50,000 x (0.6 x 2 + 0.4) x 1.1 x 0.00055 = 2,048.40; MM 100 + 48.40.
    assert margins.short_im == usdt("2048.4")
    assert margins.short_mm == usdt("148.4")


# --- P&L -----------------------------------------------------------------------------------

@given(side=sides, entry=prices, mark=prices, qty=quantities)
def test_unrealized_pnl_is_exact(side: Side, entry: int, mark: int, qty: int) -> None:
    pnl = unrealized_pnl_atoms(BTC, side, position_value_atoms(BTC, entry, qty), qty, mark)
    assert pnl * ATOM == side.sign * (mark - entry) * TICK * qty * LOT


def test_average_entry_is_an_exact_reduced_fraction() -> None:
    entry_value = position_value_atoms(BTC, 10, 1) + position_value_atoms(BTC, 11, 2)
    assert average_entry_price_ticks(BTC, entry_value, 3) == (32, 3)


@pytest.mark.parametrize(
    ("fills", "expected"),
    [([(10, 1), (11, 1)], 11), ([(10, 2), (11, 1)], 10), ([(10, 1), (11, 2)], 11)],
    ids=["an average of 10.5 ticks shows as 11 (half up)",
         "10.33 ticks shows as 10", "10.67 ticks shows as 11"],
)
def test_average_entry_display_rounds_half_up(fills: list[tuple[int, int]], expected: int) -> None:
    entry_value = sum(position_value_atoms(BTC, price, qty) for price, qty in fills)
    assert average_entry_display(BTC, entry_value, sum(qty for _, qty in fills)) == expected


@pytest.mark.parametrize(
    ("side", "released", "pnl"),
    [(BUY, 3334, -3334 + 10_000), (SELL, 3333, 3333 - 10_000)],
    ids=["closing a third of a long releases 3,334 of 10,000 atoms, rounded up",
         "closing a third of a short releases 3,333, rounded down"],
)
def test_realized_pnl_releases_entry_value_in_the_exchanges_favour(
        side: Side, released: int, pnl: int) -> None:
    # Entry value 10,000 atoms on 3 lots; close 1 lot at 1 tick (exit value 10,000 atoms).
    assert realized_pnl_on_close_atoms(BTC, side, 10_000, 3, 1, 1) == (pnl, released)


def test_closing_the_whole_position_releases_its_whole_entry_value() -> None:
    assert realized_pnl_on_close_atoms(BTC, BUY, 12_345, 7, 7, 2) == (7 * 2 * A - 12_345, 12_345)


def test_closing_more_than_the_position_is_a_bug() -> None:
    with pytest.raises(PerpxBug):
        realized_pnl_on_close_atoms(BTC, BUY, 10_000, 3, 4, 1)


@given(side=sides, data=st.data(), qty=st.integers(1, 10_000),
       entry_value=st.integers(1, 10**15))
def test_closing_in_pieces_releases_exactly_the_whole_entry_value(
        side: Side, data: st.DataObject, qty: int, entry_value: int) -> None:
    remaining_qty, remaining_value = qty, entry_value
    total_pnl = total_exit = total_released = 0
    while remaining_qty:
        piece = data.draw(st.integers(1, remaining_qty))
        exit_price = data.draw(prices)
        pnl, released = realized_pnl_on_close_atoms(BTC, side, remaining_value, remaining_qty,
                                                    piece, exit_price)
        exact = Fraction(remaining_value * piece, remaining_qty)
        assert (released >= exact) if side is BUY else (released <= exact)
        total_pnl += pnl
        total_exit += position_value_atoms(BTC, exit_price, piece)
        total_released += released
        remaining_qty -= piece
        remaining_value -= released
    assert remaining_value == 0
    assert total_released == entry_value
    assert total_pnl == side.sign * (total_exit - entry_value)


def test_closed_pnl_subtracts_fees_and_funding_paid() -> None:
    assert closed_pnl_atoms(400, 10, 20, 30) == 340
    assert closed_pnl_atoms(400, 10, 20, -30) == 400


@pytest.mark.parametrize(
    ("pnl", "margin", "expected"),
    [(1, 3, 33_333_333), (-1, 3, -33_333_334), (10, 100, 10_000_000)],
    ids=["a third rounds down", "a loss of a third rounds to the larger loss",
         "10 on 100 is exactly 10%"],
)
def test_roi_floors(pnl: int, margin: int, expected: int) -> None:
    assert roi_rate(pnl, margin) == expected


def test_roi_on_no_margin_is_a_bug() -> None:
    with pytest.raises(PerpxBug):
        roi_rate(1, 0)


@pytest.mark.parametrize(
    ("side", "order_price", "expected"),
    [(BUY, 101, -A), (BUY, 99, 0), (SELL, 99, -A), (SELL, 101, 0), (BUY, 100, 0)],
    ids=["a buy one tick above the mark loses a tick", "a buy below the mark loses nothing",
         "a sell one tick below the mark loses a tick", "a sell above the mark loses nothing",
         "an order at the mark loses nothing"],
)
def test_order_loss(side: Side, order_price: int, expected: int) -> None:
    assert order_loss_atoms(side, 100, order_price, 1, BTC) == expected


def test_the_units_these_tests_assume() -> None:
    assert BTC.atoms_per_tick_lot == 10_000
    assert BTC.taker_fee_rate == to_rate("0.00055")


def test_position_margin_and_order_cost_from_a_value_match_the_published_parts() -> None:
    # V17's 0.5 BTC long at 50,000 and 10x, held at entry: IM 2,500 + fee to close 12.375.
    from perpx.core.calc import order_cost_for_value_atoms, position_margin_atoms
    from perpx.core.enums import Side
    value = 25_000 * 10**8
    assert position_margin_atoms(Side.BUY, value, 10 * 10**8, 55_000) == 2_512_375 * 10**5
    # V15: 1 BTC at 50,000, 10x, 0.06%: 5,000 + 30 + 27 = 5,057 (short: 5,063).
    one_btc, ten_x = 50_000 * 10**8, 10 * 10**8
    assert order_cost_for_value_atoms(Side.BUY, one_btc, ten_x, 60_000) == 5_057 * 10**8
    assert order_cost_for_value_atoms(Side.SELL, one_btc, ten_x, 60_000) == 5_063 * 10**8
