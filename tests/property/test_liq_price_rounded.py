"""The isolated liquidation price found in machine words equals the rounded fraction.

`LinearContract.isolated_liquidation_price_rounded_ticks` skips the fraction when no margin
was added (the fee factor cancels; the leverage and MMR rates are taken in lowest terms).
Held here against the code it replaces, `round_liquidation_price` of
`isolated_liquidation_price_fraction` (the oracle), for any side, size, entry value,
leverage, MMR, deduction, added margin and fee rate, refusals included; and
`liqprice.isolated_liquidation_price_selected_ticks` against the selected fraction rounded,
on linear and inverse instruments under both formulas.
"""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.core import liqprice
from perpx.core.contract import LinearContract, round_liquidation_price
from perpx.core.enums import Side
from perpx.core.instruments import LiquidationFormula
from perpx.core.numbers import RATE_ONE
from support.builders import btcusd, btcusdt, ethusdt

R = RATE_ONE
sides = st.sampled_from([Side.BUY, Side.SELL])
values = st.one_of(st.integers(0, 10**13), st.integers(-(10**22), 10**22))
quantities = st.one_of(st.integers(1, 10**6), st.integers(-2, 10**12))
leverages = st.one_of(st.sampled_from([R, 2 * R, 5 * R, 10 * R, 20 * R, 25 * R, 50 * R, 100 * R]),
                      st.integers(-2, 2 * 10**10))
rates = st.one_of(st.sampled_from([0, 500_000, 1_000_000, 2_500_000, 55_000]),
                  st.integers(-2 * R, 2 * R))
amounts = st.one_of(st.just(0), st.integers(-(10**20), 10**20))


Args = tuple[Side, int, int, int, int, int, int, int]


def _oracle(contract: LinearContract, args: Args) -> int | str:
    """The fraction rounded toward the mark, or the refusal's message."""
    try:
        numerator, denominator = contract.isolated_liquidation_price_fraction(*args)
    except Exception as error:  # the refusal itself is compared
        return f"{type(error).__name__}: {error}"
    return round_liquidation_price(args[0], numerator, denominator)


def _fast(contract: LinearContract, args: Args) -> int | str:
    try:
        return contract.isolated_liquidation_price_rounded_ticks(*args)
    except Exception as error:
        return f"{type(error).__name__}: {error}"


@settings(max_examples=3000)
@given(st.integers(1, 10**6), sides, values, quantities, leverages, amounts, rates, amounts,
       rates)
def test_the_rounded_price_is_the_rounded_fraction(
        atoms: int, side: Side, value: int, qty: int, leverage: int, extra: int, mmr: int,
        deduction: int, fee: int) -> None:
    contract = LinearContract(atoms)
    args = (side, value, qty, leverage, extra, mmr, deduction, fee)
    assert _fast(contract, args) == _oracle(contract, args)


@settings(max_examples=1500)
@given(st.sampled_from(["BTCUSDT", "ETHUSDT", "BTCUSD"]),
       st.sampled_from(list(LiquidationFormula)), sides, st.integers(1, 10**14),
       st.integers(1, 10**7), st.sampled_from([R, 3 * R, 10 * R, 33 * R, 100 * R]),
       st.one_of(st.just(0), st.integers(-(10**12), 10**12)), st.integers(0, 40))
def test_the_selected_price_is_the_selected_fraction_rounded(
        symbol: str, formula: LiquidationFormula, side: Side, value: int, qty: int,
        leverage: int, extra: int, tier_at: int) -> None:
    spec = {"BTCUSDT": btcusdt, "ETHUSDT": ethusdt, "BTCUSD": btcusd}[symbol]()
    if spec.liq_price_formula is not formula:
        try:
            spec = dataclasses.replace(spec, liq_price_formula=formula)
        except Exception:  # a contract that refuses the formula is skipped
            return
    tier = spec.risk_tiers[tier_at % len(spec.risk_tiers)]
    numerator, denominator = liqprice.isolated_liquidation_price_selected_fraction(
        spec, side, value, qty, leverage, extra, tier.mmr, tier.mm_deduction_atoms,
        spec.taker_fee_rate)
    assert liqprice.isolated_liquidation_price_selected_ticks(
        spec, side, value, qty, leverage, extra, tier.mmr, tier.mm_deduction_atoms,
    ) == round_liquidation_price(side, numerator, denominator)
