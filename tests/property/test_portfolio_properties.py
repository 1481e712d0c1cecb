"""Properties of the portfolio-margin maths (next-mechanics §5.3, §5.4) on random books.

- For perpetuals and futures, linear and inverse, the unit's worst grid point is an endpoint
  (±range): every leg's USD P&L is linear in the shock (inverse: exactly ``C x s``), and the
  floor toward the loss keeps that order.
- A perp hedged by a future of the same contract family on the same base has MaxLoss 0
  under the index base (one shared base price), whatever the prices, sizes and USD rate.
- MM grows with the size of a position.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.core.account.portfolio import PmLeg, PmParams, ShockBase, unit_margin
from perpx.instruments import bundled_instruments

SPECS = {spec.symbol: spec for spec in bundled_instruments()}
BTC_SYMBOLS = ("BTCUSDT", "BTCUSDT-25DEC26", "BTCUSDT-26MAR27", "BTCPERP", "BTCUSD",
               "BTCUSDZ26", "BTCUSDH27")
# Index prices in USD atoms per coin: 1,000 to 200,000, then put on each instrument's tick.
PRICES = st.integers(1_000 * 10**8, 200_000 * 10**8)
USD_RATES = st.integers(95_000_000, 105_000_000)  # USDT / USDC between 0.95 and 1.05 USD
LOTS = st.integers(-5_000, 5_000)


def _ticks(symbol: str, price_e8: int) -> int:
    return max(1, price_e8 // SPECS[symbol].tick_atoms)


def _leg(symbol: str, lots: int, price_e8: int, mark_e8: int, usd: int) -> PmLeg:
    return PmLeg(SPECS[symbol], lots, _ticks(symbol, price_e8), usd,
                 mark_ticks=_ticks(symbol, mark_e8))


BOOKS = st.lists(st.tuples(st.sampled_from(BTC_SYMBOLS), LOTS, PRICES, PRICES, USD_RATES),
                 min_size=1, max_size=len(BTC_SYMBOLS), unique_by=lambda row: row[0])


@settings(max_examples=150, deadline=None)
@given(BOOKS, st.sampled_from(list(ShockBase)))
def test_worst_point_is_an_endpoint(book: list[tuple[str, int, int, int, int]],
                                    base: ShockBase) -> None:
    legs = [_leg(*row) for row in book]
    unit = unit_margin("BTC", legs, PmParams(shock_base=base))
    assert min(unit.pnls) == min(unit.pnls[0], unit.pnls[-1])
    assert unit.max_loss == max(0, -min(unit.pnls))
    assert unit.max_loss_price_move in (unit.shocks[0], unit.shocks[-1]) or unit.max_loss == 0
    assert unit.mm == unit.max_loss + unit.contingency


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([("BTCUSDT", "BTCUSDT-25DEC26"), ("BTCUSDT-26MAR27", "BTCUSDT"),
                        ("BTCUSD", "BTCUSDZ26"), ("BTCUSDH27", "BTCUSD")]),
       st.integers(1, 100_000), PRICES, PRICES, PRICES, USD_RATES)
def test_hedged_perp_and_future_under_index_base_has_no_max_loss(
        pair: tuple[str, str], lots: int, index_e8: int, mark_a: int, mark_b: int,
        usd: int) -> None:
    perp, future = pair
    # One index on both instruments' ticks: taken on the coarser tick (0.5 is a whole number
    # of BTCUSD's 0.1 ticks).
    coarse = max(SPECS[perp].tick_atoms, SPECS[future].tick_atoms)
    index = index_e8 // coarse * coarse
    legs = [_leg(perp, lots, index, mark_a, usd), _leg(future, -lots, index, mark_b, usd)]
    unit = unit_margin("BTC", legs, PmParams())
    assert unit.max_loss == 0
    assert set(unit.pnls) == {0}
    assert unit.mm == unit.contingency > 0


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(BTC_SYMBOLS), st.integers(0, 50_000), st.integers(0, 50_000),
       st.sampled_from((1, -1)), PRICES, PRICES, USD_RATES, st.sampled_from(list(ShockBase)))
def test_mm_is_monotone_in_the_size(symbol: str, small: int, extra: int, sign: int,
                                    index_e8: int, mark_e8: int, usd: int,
                                    base: ShockBase) -> None:
    params = PmParams(shock_base=base)
    first = unit_margin("BTC", [_leg(symbol, sign * small, index_e8, mark_e8, usd)], params)
    larger = unit_margin("BTC", [_leg(symbol, sign * (small + extra), index_e8, mark_e8, usd)],
                         params)
    assert first.mm <= larger.mm
    assert first.im <= larger.im
