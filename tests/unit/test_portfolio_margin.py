"""Portfolio margin maths (next-mechanics §5): the worked examples P2-P5, the grid, orders.

Amounts are USD atoms (10**-8 USD). P3, P4 and P5 are constructed examples of the spec (§5.7,
[con]); P2 is Dederi's published contingency (another venue's), used for the default
riskFactor 0.006, which is not Bybit's.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import pytest

from perpx.core.account.portfolio import (
    BTC_ETH_RANGE,
    OTHER_RANGE,
    PmLeg,
    PmParams,
    PmRange,
    ShockBase,
    portfolio_margin,
    unit_margin,
)
from perpx.core.errors import PerpxBug
from perpx.core.instruments import ContractType, InstrumentSpec
from perpx.instruments import bundled_instruments

USD = 10**8  # atoms per USD
USDT_USD = 10**8  # USDT at exactly 1 USD
SPECS = {spec.symbol: spec for spec in bundled_instruments()}
BTCUSDT = SPECS["BTCUSDT"]  # tick 0.10, lot 0.001 BTC
BTC_FUTURE = SPECS["BTCUSDT-25DEC26"]
BTCUSD = SPECS["BTCUSD"]  # inverse, lot 1 USD, tick 0.10
BTCPERP = SPECS["BTCPERP"]  # USDC, tick 0.5
ETHUSDT = SPECS["ETHUSDT"]  # tick 0.01, lot 0.01 ETH
INDEX_60000 = 600_000  # 60,000.0 in BTCUSDT's 0.10 ticks
ONE_BTC = 1_000  # lots of 0.001


def btc_perp(lots: int, mark: int = 0, buys: int = 0, sells: int = 0) -> PmLeg:
    return PmLeg(BTCUSDT, lots, INDEX_60000, USDT_USD, mark_ticks=mark, buy_order_lots=buys,
                 sell_order_lots=sells)


def test_grid_btc_eth_eleven_points_of_two_percent() -> None:
    params = PmParams()
    grid = params.grid("BTC")
    assert grid == tuple(k * 2_000_000 for k in range(-5, 6))  # -0.1, -0.08, ..., 0.1
    assert len(grid) == 11 and grid[0] == -10_000_000 and grid[-1] == 10_000_000
    assert params.grid("ETH") == grid
    assert params.range_for("BTC") == BTC_ETH_RANGE


def test_grid_other_coins_fifteen_percent_in_three_percent_steps() -> None:
    grid = PmParams().grid("SOL")
    assert grid == tuple(k * 3_000_000 for k in range(-5, 6))
    assert PmParams().range_for("DOGE") == OTHER_RANGE


def test_grid_is_configurable_per_coin_and_validated() -> None:
    params = PmParams(ranges={"BTC": PmRange(15_000_000, 5_000_000)})
    assert params.grid("BTC") == (-15_000_000, -10_000_000, -5_000_000, 0, 5_000_000,
                                  10_000_000, 15_000_000)
    assert params.grid("ETH") == OTHER_RANGE.shocks()  # not in the venue's table: default
    with pytest.raises(ValueError):
        PmRange(10_000_000, 3_000_000)  # not a whole number of steps
    with pytest.raises(ValueError):
        PmRange(100_000_000, 10_000_000)  # -100% has no price
    with pytest.raises(ValueError):
        PmParams(im_factor=90_000_000)
    copied = params.copy()
    copied.ranges["ETH"] = BTC_ETH_RANGE
    assert "ETH" not in params.ranges


def test_p3_unhedged_long_perp() -> None:
    """P3: long 1 BTCUSDT, index 60,000: MaxLoss 6,000, contingency 360, MM 6,360, IM 7,632."""
    unit = unit_margin("BTC", [btc_perp(ONE_BTC)], PmParams())
    assert unit.pnls == tuple(k * 1_200 * USD for k in range(-5, 6))
    assert unit.max_loss == 6_000 * USD
    assert unit.max_loss_price_move == -10_000_000
    assert unit.future_contingency == 360 * USD
    assert unit.contingency == 360 * USD
    assert unit.mm == 6_360 * USD
    assert unit.im == 7_632 * USD
    assert unit.legs[0].pnls == unit.pnls


def test_p4_hedged_perp_and_future_index_base_nets_zero() -> None:
    """P4: long 1 perp (mark 60,010), short 1 future (mark 61,200), index 60,000."""
    legs = [btc_perp(ONE_BTC, mark=600_100),
            PmLeg(BTC_FUTURE, -ONE_BTC, INDEX_60000, USDT_USD, mark_ticks=612_000)]
    unit = unit_margin("BTC", legs, PmParams())
    assert unit.pnls == (0,) * 11
    assert unit.max_loss == 0
    assert unit.future_contingency == 720 * USD  # 0.006 x 60,000 x 2
    assert unit.mm == 720 * USD
    assert unit.im == 864 * USD
    assert unit.legs[0].pnls[0] == -6_000 * USD and unit.legs[1].pnls[0] == 6_000 * USD


def test_p4_mark_base_carries_the_basis() -> None:
    """P4 with pmShockBase = mark: MaxLoss 119.0 at +10% (6,001 - 6,120)."""
    legs = [btc_perp(ONE_BTC, mark=600_100),
            PmLeg(BTC_FUTURE, -ONE_BTC, INDEX_60000, USDT_USD, mark_ticks=612_000)]
    unit = unit_margin("BTC", legs, PmParams(shock_base=ShockBase.MARK))
    assert unit.max_loss == 119 * USD
    assert unit.max_loss_price_move == 10_000_000
    assert unit.future_contingency == 720 * USD  # the contingency stays on the index
    assert unit.mm == 839 * USD


def test_p5_inverse_pnl_is_exactly_c_times_s_in_usd() -> None:
    """P5: long 60,000 BTCUSD at B 60,000: -6,000 USD at -10%, +6,000 USD at +10%."""
    unit = unit_margin("BTC", [PmLeg(BTCUSD, 60_000, 600_000, 0)], PmParams())
    assert unit.pnls[0] == -6_000 * USD and unit.pnls[-1] == 6_000 * USD
    assert unit.pnls == tuple(k * 1_200 * USD for k in range(-5, 6))
    # In coin: -0.11111111 BTC at 54,000 and +0.09090909 BTC at 66,000 (the contract's values).
    contract = BTCUSD.contract
    at_b = contract.value_floor_atoms(600_000, 60_000)
    assert at_b - contract.value_floor_atoms(540_000, 60_000) == -11_111_111
    assert at_b - contract.value_floor_atoms(660_000, 60_000) == 9_090_910  # 0.0909090(9)
    # The contingency: |q| in BTC = C / B, times the index = C.
    assert unit.future_contingency == 360 * USD
    # A short is the mirror image.
    short = unit_margin("BTC", [PmLeg(BTCUSD, -60_000, 600_000, 0)], PmParams())
    assert short.max_loss == 6_000 * USD and short.max_loss_price_move == 10_000_000


def test_p2_dederi_contingency_and_scenario() -> None:
    """P2: long 10 ETH futures, I0 2,243.3, F0 2,253.2 (Dederi, ±15%)."""
    future = dataclasses.replace(ETHUSDT, symbol="ETHUSDT-27MAR26",
                                 contract_type=ContractType.LINEAR_FUTURES,
                                 delivery_time_ms=1_774_598_400_000, delivery_fee_rate=50_000)
    leg = PmLeg(future, 1_000, 224_330, USDT_USD, mark_ticks=225_320)
    unit = unit_margin("ETH", [leg], PmParams())
    # 0.006 x 2,243.3 x 10 = 134.598 (Dederi prints 134.6)
    assert unit.future_contingency == 13_459_800_000
    dederi = PmParams(ranges={"ETH": OTHER_RANGE}, shock_base=ShockBase.MARK)
    shocked = unit_margin("ETH", [leg], dederi)
    # 10 x 2,253.2 x 0.15 = 3,379.8 (Dederi prints ±3,380)
    assert shocked.pnls[0] == -337_980_000_000 and shocked.pnls[-1] == 337_980_000_000


def test_usdc_leg_is_converted_at_the_usdc_price() -> None:
    """A USDC perp's P&L is valued in USD at USDC's price (§5.3), rounded toward the loss."""
    usdc_usd = 99_987_654  # 0.99987654 USD
    leg = PmLeg(BTCPERP, ONE_BTC, 120_000, usdc_usd)  # 60,000.0 in 0.5 ticks
    unit = unit_margin("BTC", [leg], PmParams())
    # -6,000 USDC x 0.99987654 = -5,999.25924 USD exactly
    assert unit.pnls[0] == -599_925_924_000
    odd = PmLeg(BTCPERP, 1, 120_001, usdc_usd)  # 0.001 BTC at 60,000.5
    row = unit_margin("BTC", [odd], PmParams()).pnls
    exact = Fraction(-600_005 * 10**8, 100_000) * Fraction(usdc_usd, 10**8)  # -6.00005 USDC
    assert exact.denominator > 1
    assert row[0] == math.floor(exact)  # toward the loss


def test_hedge_across_rounding_nets_to_zero() -> None:
    """Each leg's shown P&L is floored, the unit's total is the floor of the exact sum."""
    usdc_usd = 99_987_654
    legs = [PmLeg(BTCPERP, 1, 120_001, usdc_usd),
            PmLeg(dataclasses.replace(BTCPERP, symbol="BTC-25DEC26",
                                      contract_type=ContractType.LINEAR_FUTURES,
                                      delivery_time_ms=1_798_185_600_000),
                  -1, 120_001, usdc_usd)]
    unit = unit_margin("BTC", legs, PmParams())
    assert unit.pnls == (0,) * 11 and unit.max_loss == 0
    assert unit.legs[0].pnls[0] + unit.legs[1].pnls[0] == -1  # each leg rounded to the loss


def test_orders_buys_increase_risk_of_a_long() -> None:
    """Long 1 + buy 0.5: IM = 1.2 x MM(1.5 BTC); MM stays that of the position."""
    unit = unit_margin("BTC", [btc_perp(ONE_BTC, buys=500)], PmParams())
    assert unit.mm == 6_360 * USD
    assert unit.mm_with_buys == 9_540 * USD  # 9,000 + 0.006 x 90,000
    assert unit.mm_with_sells == 6_360 * USD
    assert unit.im == 11_448 * USD


def test_orders_sells_reducing_a_long_do_not_add() -> None:
    """Long 1 + sell 0.5: the sell reduces the risk, IM stays 1.2 x MM(pos)."""
    unit = unit_margin("BTC", [btc_perp(ONE_BTC, sells=500)], PmParams())
    assert unit.mm_with_sells == 3_180 * USD
    assert unit.im == 7_632 * USD


def test_orders_sells_flipping_beyond_the_position_count() -> None:
    """Long 1 + sell 3: the sells leave a short 2 (MM 12,720), which sets the IM."""
    unit = unit_margin("BTC", [btc_perp(ONE_BTC, sells=3_000)], PmParams())
    assert unit.mm_with_sells == 12_720 * USD
    assert unit.im == 15_264 * USD
    assert unit.mm == 6_360 * USD


def test_orders_on_a_hedge_take_the_worse_side() -> None:
    """Perp-future hedge (MM 720) with a buy 1 on the perp and a sell 0.5 on the future."""
    legs = [btc_perp(ONE_BTC, buys=ONE_BTC),
            PmLeg(BTC_FUTURE, -ONE_BTC, INDEX_60000, USDT_USD, sell_order_lots=500)]
    unit = unit_margin("BTC", legs, PmParams())
    assert unit.mm == 720 * USD
    assert unit.mm_with_buys == (6_000 + 1_080) * USD  # long 2 / short 1: net 1 BTC
    assert unit.mm_with_sells == (3_000 + 900) * USD  # long 1 / short 1.5: net -0.5
    assert unit.im == 8_496 * USD  # 1.2 x 7,080


def test_orders_only_flat_account() -> None:
    unit = unit_margin("BTC", [btc_perp(0, buys=ONE_BTC)], PmParams())
    assert unit.mm == 0 and unit.max_loss == 0 and unit.pnls == (0,) * 11
    assert unit.im == 7_632 * USD


def test_contingency_hooks_default_zero_and_apply_to_the_offset() -> None:
    legs = [btc_perp(ONE_BTC),
            PmLeg(BTC_FUTURE, -ONE_BTC, INDEX_60000, USDT_USD)]
    assert unit_margin("BTC", legs, PmParams()).delta_spread_contingency == 0
    hooked = unit_margin("BTC", legs, PmParams(delta_spread_rate=1_000_000,
                                               usdt_usdc_rate=2_000_000))
    assert hooked.delta_spread_contingency == 600 * USD  # 1% of the 60,000 offset
    assert hooked.usdt_usdc_contingency == 0  # both USDT
    assert hooked.contingency == 1_320 * USD
    assert hooked.mm == 1_320 * USD
    cross_coin = [btc_perp(ONE_BTC), PmLeg(BTCPERP, -ONE_BTC, 120_000, USDT_USD)]
    mixed = unit_margin("BTC", cross_coin, PmParams(usdt_usdc_rate=2_000_000))
    assert mixed.usdt_usdc_contingency == 1_200 * USD  # 2% of the 60,000 USDT-USDC offset


def test_account_sums_units_sorted_by_coin() -> None:
    eth = PmLeg(ETHUSDT, -1_000, 300_000, USDT_USD)  # short 10 ETH at 3,000
    account = portfolio_margin([btc_perp(ONE_BTC), eth], PmParams())
    assert [unit.base_coin for unit in account.units] == ["BTC", "ETH"]
    eth_unit = account.unit("ETH")
    assert eth_unit is not None
    assert eth_unit.max_loss == 3_000 * USD and eth_unit.max_loss_price_move == 10_000_000
    assert eth_unit.mm == (3_000 + 180) * USD
    assert account.mm == (6_360 + 3_180) * USD
    assert account.im == 7_632 * USD + 3_816 * USD
    assert account.unit("SOL") is None
    assert portfolio_margin([], PmParams()).mm == 0


def test_caller_bugs_are_refused() -> None:
    with pytest.raises(PerpxBug):
        unit_margin("ETH", [btc_perp(ONE_BTC)], PmParams())
    with pytest.raises(PerpxBug):
        unit_margin("BTC", [btc_perp(ONE_BTC), btc_perp(1)], PmParams())
    with pytest.raises(PerpxBug):
        PmLeg(BTCUSDT, 1, 0, USDT_USD)
    with pytest.raises(PerpxBug):
        PmLeg(BTCUSDT, 1, INDEX_60000, USDT_USD, buy_order_lots=-1)


def _spec(symbol: str) -> InstrumentSpec:
    return SPECS[symbol]


def test_inverse_future_and_perp_hedge_nets_zero() -> None:
    legs = [PmLeg(BTCUSD, 60_000, 600_000, 0), PmLeg(_spec("BTCUSDZ26"), -60_000, 120_000, 0)]
    unit = unit_margin("BTC", legs, PmParams())
    assert unit.max_loss == 0 and unit.mm == 720 * USD
