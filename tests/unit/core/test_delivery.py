"""Dated futures: the worked examples of next-mechanics §2.8 and the §7 decisions, pinned.

E1, E2 and E4 are inverse futures (P&L and fee in the base coin, BTCUSDZ26's 0.50 tick).
Figures are checked against the exact
decimal arithmetic of the spec, not against the code's own output.
"""

from __future__ import annotations

import dataclasses
from decimal import ROUND_DOWN, Decimal

import pytest

from perpx.convert import to_atoms, to_lots
from perpx.core.codes import RejectCode
from perpx.core.commands import IndexPrice, ListInstrument, PlaceOrder
from perpx.core.contract import settlement_fee_atoms
from perpx.core.delivery import delivery_price_e8
from perpx.core.engine import Engine
from perpx.core.enums import OrderType, Side
from perpx.core.events import CommandRejected, InstrumentListed, OrderRejected
from perpx.core.instruments import (
    ContractType,
    InstrumentSpec,
    civil_date,
    dated_symbol,
    spec_from_record,
    spec_record,
)
from perpx.instruments import FUTURES_TABLE, load_instruments
from support.builders import btcusdt

E8 = Decimal(10) ** 8
MAR26 = 1_774_598_400_000  # 2026-03-27 08:00:00 UTC


def future(symbol: str = "BTCUSDT-27MAR26", delivery_ms: int = MAR26,
           **overrides: object) -> InstrumentSpec:
    """The bundled BTCUSDT-25DEC26 moved to another delivery (its fields otherwise)."""
    base = load_instruments(FUTURES_TABLE)[0]
    return dataclasses.replace(base, symbol=symbol, delivery_time_ms=delivery_ms, **overrides)


def atoms(text: str) -> int:
    return to_atoms(text)


# -- E3: USDT expiry, long 0.5 @ 60,000, DP 61,234.56781234 ------------------------------------

E3_DP = "61234.56781234"


def test_e3_settlement_pnl_is_exact_and_the_fee_truncated() -> None:
    spec = future()
    qty = to_lots(spec, "0.5")
    entry = spec.contract.entry_value_atoms(600_000, qty)  # 60,000.0 on the 0.10 tick
    dp_e8 = int(Decimal(E3_DP) * E8)
    pnl = spec.contract.settlement_pnl_atoms(Side.BUY, entry, qty, dp_e8, spec.tick_atoms)
    value = spec.contract.value_fraction_atoms(qty, dp_e8, spec.tick_atoms)
    fee = settlement_fee_atoms(*value, spec.delivery_fee_rate)
    exact_pnl = Decimal("0.5") * (Decimal(E3_DP) - 60_000)
    exact_fee = Decimal("0.5") * Decimal(E3_DP) * Decimal("0.0005")
    assert pnl == atoms("617.28390617") == int(exact_pnl * E8)
    assert fee == atoms("15.30864195") == int((exact_fee * E8).to_integral_value(ROUND_DOWN))
    assert pnl - fee == atoms("601.97526422")
    # N1: truncated, where a trading fee would have rounded up to ...96.
    assert fee + 1 == -(-value[0] * spec.delivery_fee_rate // (value[1] * 10**8))


def test_e3_short_side_loses_what_the_long_gains_less_nothing() -> None:
    spec = future()
    qty = to_lots(spec, "0.5")
    entry = spec.contract.entry_value_atoms(600_000, qty)
    dp_e8 = int(Decimal(E3_DP) * E8)
    assert spec.contract.settlement_pnl_atoms(Side.SELL, entry, qty, dp_e8,
                                              spec.tick_atoms) == -atoms("617.28390617")


def test_a_pnl_off_the_atom_rounds_toward_the_exchange_on_both_sides() -> None:
    spec = future()
    qty = to_lots(spec, "0.001")
    entry = spec.contract.entry_value_atoms(600_000, qty)
    dp_e8 = 6_000_000_000_001  # 60,000.00000001: the value is 60.00000000001 USDT
    long = spec.contract.settlement_pnl_atoms(Side.BUY, entry, qty, dp_e8, spec.tick_atoms)
    short = spec.contract.settlement_pnl_atoms(Side.SELL, entry, qty, dp_e8, spec.tick_atoms)
    assert (long, short) == (0, -1)  # the atom's remainder is the insurance fund's


# -- E1, E2, E4: inverse futures settle in the base coin -----------------------------------


def inverse_future() -> InstrumentSpec:
    """The bundled BTCUSDZ26 (BTCUSD's filters, the 0.50 tick, 0.05% delivery fee)."""
    return next(s for s in load_instruments(FUTURES_TABLE) if s.symbol == "BTCUSDZ26")


def inverse_settlement(side: Side, contracts: int, entry: str, dp: str) -> tuple[int, int]:
    """(P&L, fee) in BTC atoms of `contracts` BTCUSDZ26 held from `entry` to DP `dp`."""
    spec = inverse_future()
    qty = to_lots(spec, str(contracts))
    entry_value = spec.contract.entry_value_atoms(int(Decimal(entry) * 2), qty)  # 0.50 tick
    dp_e8 = int(Decimal(dp) * E8)
    pnl = spec.contract.settlement_pnl_atoms(side, entry_value, qty, dp_e8, spec.tick_atoms)
    fee = settlement_fee_atoms(*spec.contract.value_fraction_atoms(qty, dp_e8, spec.tick_atoms),
                               spec.delivery_fee_rate)
    return pnl, fee


def test_e1_the_inverse_delivery_fee_is_c_over_dp_times_the_rate_in_coin() -> None:
    _, fee = inverse_settlement(Side.BUY, 10_000, "8000", "12500")
    assert fee == atoms("0.0004")  # 10,000 / 12,500 x 0.05%


def test_e2_inverse_settlement_pnl_and_net() -> None:
    pnl, fee = inverse_settlement(Side.BUY, 10_000, "8000", "10600")
    exact = 10_000 * (1 / Decimal(8000) - 1 / Decimal(10600))
    assert pnl == atoms("0.30660377") == int(exact * E8)  # 0.3066037735..: floor
    assert pnl - fee == atoms("0.30613208")


def test_e4_inverse_short_pays_its_value_rounded_toward_the_exchange_and_a_truncated_fee(
        ) -> None:
    pnl, fee = inverse_settlement(Side.SELL, 20_000, "62500", "61234.5")
    exact_pnl = 20_000 * (1 / Decimal("61234.5") - 1 / Decimal(62500))  # 0.0066132653..
    exact_fee = 20_000 / Decimal("61234.5") * Decimal("0.0005")  # 0.00016330663..
    # The spec prints both half up (0.00661327, 0.00016331); perpx rounds the P&L toward
    # the exchange (the remainder is the insurance fund's) and truncates the fee (§7 N1,
    # as E1 and E3 do): one atom less each.
    assert pnl == int(exact_pnl * E8) == atoms("0.00661327") - 1
    assert fee == int((exact_fee * E8).to_integral_value(ROUND_DOWN)) == atoms("0.00016331") - 1
    assert int((exact_pnl * E8).to_integral_value()) == atoms("0.00661327")  # as printed
    long_pnl, _ = inverse_settlement(Side.BUY, 20_000, "62500", "61234.5")
    assert long_pnl == -atoms("0.00661327")  # the long's loss rounds up


def test_e7_bybit_names_inverse_futures_by_month_code_and_year() -> None:
    assert dated_symbol("BTC", "USD", "BTC", 1_798_185_600_000) == "BTCUSDZ26"
    assert dated_symbol("BTC", "USD", "BTC", MAR26) == "BTCUSDH26"
    assert dated_symbol("ETH", "USD", "ETH", 1_782_460_800_000) == "ETHUSDM26"  # 26 JUN 26
    spec = inverse_future()
    assert spec.contract_type is ContractType.INVERSE_FUTURES and spec.dated
    assert (spec.settle_coin, spec.delivery_time_ms, spec.tick_size) == (
        "BTC", 1_798_185_600_000, "0.50")
    assert spec.contract.value_sign == -1


def test_an_inverse_contract_settling_in_another_coin_is_refused() -> None:
    with pytest.raises(ValueError, match="settles in its base coin"):
        dataclasses.replace(inverse_future(), settle_coin="USDT")


def test_an_inverse_future_is_listed_under_its_bybit_name_only() -> None:
    engine = Engine([btcusdt()])
    record = spec_record(inverse_future())
    wrong = engine.apply(ListInstrument(1, 1_790_000_000_000, {**record, "symbol": "BTCUSD1225"}))
    assert wrong[0].reason is RejectCode.INVALID_INSTRUMENT
    events = engine.apply(ListInstrument(2, 1_790_000_000_000, record))
    assert [type(e) for e in events] == [InstrumentListed]
    assert "BTC" in engine.clearing.coins
    assert engine.delivery.next_due_ms == 1_798_185_600_000


# -- E5: USDC futures pay no delivery fee ------------------------------------------------------


def test_e5_a_zero_delivery_fee_rate_charges_nothing() -> None:
    spec = future(delivery_fee_rate=0)
    value = spec.contract.value_fraction_atoms(to_lots(spec, "3"), 6_123_456_781_234,
                                               spec.tick_atoms)
    assert settlement_fee_atoms(*value, spec.delivery_fee_rate) == 0


# -- E6: the delivery price is the mean of 1,800 per-second samples ----------------------------


def test_e6_the_mean_of_an_arithmetic_series() -> None:
    samples = [610_000 + k for k in range(1_800)]  # 61,000.0 .. 61,179.9 on the 0.10 tick
    assert delivery_price_e8(sum(samples), len(samples), 10**7) == 6_108_995_000_000


def test_e6_through_the_engine_samples_one_index_per_second_in_the_last_30_minutes() -> None:
    spec = future()
    engine = Engine([spec])
    # Before the window (ignored), then every second of it, then a second twice (once kept).
    flow = [(MAR26 - 1_800_001, 1)] + [
        (MAR26 - 1_800_000 + 1_000 * k, 610_000 + k) for k in range(1_800)] + [
        (MAR26 - 500, 999_999)]
    for seq, (ts, ticks) in enumerate(flow, start=1):
        engine.apply(IndexPrice(seq, ts, spec.symbol, ticks))
    assert engine.delivery.predicted_price_e8(spec.symbol) == 6_108_995_000_000


def test_n3_the_delivery_price_keeps_8_decimals_half_up() -> None:
    # A tick of 10**-8: the mean 1.5 units rounds up, 2.25 (of 4 samples) down.
    assert delivery_price_e8(3, 2, 1) == 2
    assert delivery_price_e8(9, 4, 1) == 2
    # Not rounded to the tick: 0.10-tick samples 61,000.0 and 61,000.1 average 61,000.05.
    assert delivery_price_e8(610_000 + 610_001, 2, 10**7) == 6_100_005_000_000


# -- E7 and naming -------------------------------------------------------------------------


def test_e7_delivery_time_is_the_25th_of_december_2026_at_8_utc() -> None:
    assert civil_date(1_798_185_600_000) == (2026, 12, 25)
    assert 1_798_185_600_000 % 86_400_000 == 8 * 3_600_000


def test_bybit_names_usdt_and_usdc_futures_by_their_delivery_day() -> None:
    assert dated_symbol("BTC", "USDT", "USDT", MAR26) == "BTCUSDT-27MAR26"
    assert dated_symbol("ETH", "USDT", "USDT", 1_739_520_000_000) == "ETHUSDT-14FEB25"
    assert dated_symbol("BTC", "USDC", "USDC", 1_766_736_000_000) == "BTC-26DEC25"


def test_the_bundled_futures_are_named_and_fielded_as_bybit_does() -> None:
    for spec in load_instruments(FUTURES_TABLE):
        assert spec.contract_type in (ContractType.LINEAR_FUTURES,
                                      ContractType.INVERSE_FUTURES) and spec.dated
        assert spec.symbol == dated_symbol(spec.base_coin, spec.quote_coin, spec.settle_coin,
                                           spec.delivery_time_ms)
        assert spec.delivery_fee_rate == 50_000  # 0.05%
        assert spec.mark_basis_window_ms == 600_000  # the 10-minute basis MA (§2.3)
    assert all(not spec.dated for spec in load_instruments())  # the default table: perps


def test_a_perpetual_with_a_delivery_time_or_a_future_without_one_is_refused() -> None:
    with pytest.raises(ValueError, match="no deliveryTime"):
        btcusdt(delivery_time_ms=MAR26)
    with pytest.raises(ValueError, match="needs a deliveryTime"):
        future(delivery_ms=0)


# -- listing --------------------------------------------------------------------------------


def test_a_spec_record_round_trips() -> None:
    spec = future()
    assert spec_from_record(spec_record(spec)) == spec


@pytest.mark.parametrize(("change", "code"), [
    ({"symbol": "BTCUSDT"}, RejectCode.DUPLICATE_INSTRUMENT),
    ({"tick_atoms": "ten"}, RejectCode.INVALID_INSTRUMENT),
    ({"colour": 1}, RejectCode.INVALID_INSTRUMENT),
    ({"contract_type": int(ContractType.INVERSE_FUTURES)}, RejectCode.INVALID_INSTRUMENT),
    ({"symbol": "BTCUSDT-0327"}, RejectCode.INVALID_INSTRUMENT),  # not Bybit's name
    ({"delivery_time_ms": 1_000}, RejectCode.INVALID_INSTRUMENT),  # expired
])
def test_a_malformed_or_duplicate_listing_is_refused_and_changes_nothing(
        change: dict[str, object], code: RejectCode) -> None:
    engine = Engine([btcusdt()])
    before = engine.state_hash()
    record = {**spec_record(future()), **change}
    events = engine.apply(ListInstrument(1, 1_700_000_000_000, record))
    assert [type(e) for e in events] == [CommandRejected]
    assert events[0].reason is code
    assert engine.state_hash() != before  # only the seq moved
    assert sorted(engine.instruments) == ["BTCUSDT"]


def test_a_listed_future_trades_and_survives_a_snapshot() -> None:
    engine = Engine([btcusdt()])
    spec = future("BTCUSDT-25DEC26", 1_798_185_600_000)
    events = engine.apply(ListInstrument(1, 1_790_000_000_000, spec_record(spec)))
    assert [type(e) for e in events] == [InstrumentListed]
    assert engine.instruments[spec.symbol] == spec
    restored = Engine.from_snapshot([btcusdt()], engine.to_snapshot())
    assert restored.state_hash() == engine.state_hash()
    assert restored.delivery.next_due_ms == spec.delivery_time_ms


def test_an_order_on_an_unknown_future_is_refused_as_an_unknown_symbol() -> None:
    engine = Engine([btcusdt()])
    events = engine.apply(PlaceOrder(1, 1, 1, "BTCUSDT-27MAR26", Side.BUY, OrderType.LIMIT,
                                     1, 1))
    assert type(events[0]) is OrderRejected
